"""The shopper's language: Flask-Babel catalogues, chosen by an explicit switch or Accept-Language.

A choice made with the switcher (``?lang=``, which the page's forms carry in their action URL)
is kept in a cookie. Only the query string is read: parsing a body here could fail on a request
whose body is refused anyway, and the error page must still render.
"""
from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, request
from flask_babel import Babel, get_locale

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
DEFAULT = "en"
# Every language shoppers can pick, named in its own language for the switcher.
LANGUAGES = {"en": "English", "es": "Español", "fr": "Français", "de": "Deutsch", "pt": "Português", "ja": "日本語"}
COOKIE = "lang"
COOKIE_MAX_AGE = 180 * 24 * 3600


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale, default_translation_directories=str(TRANSLATIONS))
    app.jinja_env.globals.update(languages=LANGUAGES, current_language=current_language)
    app.after_request(_remember_choice)


def select_locale() -> str:
    chosen = request.args.get(COOKIE) or request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES.keys()) or DEFAULT


def current_language() -> str:
    """The language of this response, as an HTML ``lang`` value."""
    return str(get_locale() or DEFAULT)


def _remember_choice(response: Response) -> Response:
    chosen = request.args.get(COOKIE)
    if chosen in LANGUAGES and request.cookies.get(COOKIE) != chosen:
        response.set_cookie(COOKIE, chosen, max_age=COOKIE_MAX_AGE, secure=request.is_secure, httponly=True, samesite="Lax")
    return response
