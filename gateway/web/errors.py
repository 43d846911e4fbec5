"""Plain pages for HTTP errors on browser routes: no stack trace ever reaches a client."""
from __future__ import annotations

import logging

from flask import Flask, render_template
from flask_babel import gettext
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def title_for(code: int | None) -> str:
    """A title a shopper understands, instead of the HTTP status name."""
    titles = {
        400: gettext("This request could not be used"),
        404: gettext("Page not found"),
        405: gettext("This page cannot be used this way"),
        410: gettext("This page is no longer available"),
        413: gettext("Too much data was sent"),
        429: gettext("Too many attempts"),
    }
    return str(titles.get(code or 500, gettext("Something went wrong")))


def _message_for(exc: HTTPException) -> str:
    """Our own aborts carry a sentence for shoppers; Werkzeug's stock descriptions are replaced."""
    stock = type(exc).description
    if exc.description and exc.description != stock:
        return exc.description
    return str(gettext("Check the address, or return to the store and try again."))


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        # Keep what the exception says about itself: Allow on a 405, Retry-After on a 429.
        headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
        return render_template("message.html", title=title_for(exc.code), message=_message_for(exc)), exc.code, headers

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unhandled error")
        return render_template("message.html", title=title_for(500),
                               message=gettext("Something went wrong on our side; please try again in a moment.")), 500
