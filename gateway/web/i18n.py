"""The shopper's language: Flask-Babel catalogues, chosen by an explicit switch or Accept-Language.

A choice made with the switcher (``?lang=``, which the page's forms carry in their action URL)
is kept in a cookie. Only the query string is read: parsing a body here could fail on a request
whose body is refused anyway, and the error page must still render.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from babel.support import NullTranslations
from flask import Flask, Response, g, request
from flask_babel import Babel, get_locale, get_translations
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
DEFAULT = "en"
# Every language shoppers can pick, named in its own language for the switcher.
LANGUAGES = {"en": "English", "es": "Español", "fr": "Français", "de": "Deutsch", "pt": "Português", "ja": "日本語"}
COOKIE = "lang"
COOKIE_MAX_AGE = 180 * 24 * 3600
PLAIN_TEXTS = 1024  # translated texts without variables remembered per language


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale, default_translation_directories=str(TRANSLATIONS))
    app.jinja_env.globals["languages"] = LANGUAGES
    app.context_processor(_language)
    app.context_processor(_page_catalogue)
    app.after_request(_remember_choice)


def _language() -> dict[str, str]:
    """The page's language, resolved once for its every use (the html lang, the switcher, form actions)."""
    return {"lang": current_language()}


def _page_catalogue() -> dict[str, Callable[..., str]]:
    """The template's gettext, bound to this request's catalogue once per page. Flask-Babel's own
    looks the catalogue up through the request context for every string (~120 times a page)."""
    return _template_callables(catalogue())


def catalogue() -> NullTranslations:
    """This request's catalogue, looked up once: each Flask-Babel lookup formats the locale's name."""
    found: NullTranslations | None = g.get("catalogue")
    if found is None:
        found = g.catalogue = get_translations()
    return found


@functools.lru_cache(maxsize=4 * len(LANGUAGES))
def _template_callables(catalogue: NullTranslations) -> dict[str, Callable[..., str]]:
    """Jinja's "newstyle" gettext over one catalogue (Flask-Babel keeps one object per language):
    the text is marked safe where the template escapes, then formatted with its escaped variables.
    ``_`` is bound directly (Jinja's own alias calls through the context again), and a text without
    variables is translated and formatted once per catalogue, not once per page."""
    plain: dict[tuple[str, bool], str] = {}  # the templates' own texts: at most PLAIN_TEXTS of them

    @pass_context
    def gettext(context: Context, message: str, **variables: Any) -> str:
        autoescape = context.eval_ctx.autoescape
        if variables:
            return _formatted(autoescape, catalogue.ugettext(message), variables)
        key = (message, autoescape)
        text = plain.get(key)
        if text is None:
            text = _formatted(autoescape, catalogue.ugettext(message), variables)
            if len(plain) < PLAIN_TEXTS:
                plain[key] = text
        return text

    @pass_context
    def ngettext(context: Context, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        return _formatted(context.eval_ctx.autoescape, catalogue.ungettext(singular, plural, num), variables)

    return {"gettext": gettext, "_": gettext, "ngettext": ngettext}


def _formatted(autoescape: bool, text: str, variables: dict[str, Any]) -> str:
    if autoescape:
        return Markup(text) % variables
    return text % variables


def select_locale() -> str:
    chosen = request.args.get(COOKIE) or request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return _best_language(request.headers.get("Accept-Language", ""))


@functools.lru_cache(maxsize=256)
def _best_language(header: str) -> str:
    """Browsers send a handful of distinct headers: parsing one and matching it was a twentieth of a page."""
    return parse_accept_header(header, LanguageAccept).best_match(LANGUAGES.keys()) or DEFAULT


def current_language() -> str:
    """The language of this response, as an HTML ``lang`` value."""
    return str(get_locale() or DEFAULT)


def _remember_choice(response: Response) -> Response:
    chosen = request.args.get(COOKIE)
    if chosen in LANGUAGES and request.cookies.get(COOKIE) != chosen:
        response.set_cookie(COOKIE, chosen, max_age=COOKIE_MAX_AGE, secure=request.is_secure, httponly=True, samesite="Lax")
    return response
