"""Plain pages for HTTP errors on browser routes: no stack trace ever reaches a client."""
from __future__ import annotations

import logging

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        # Keep what the exception says about itself: Allow on a 405, Retry-After on a 429.
        headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
        return render_template("message.html", title=exc.name, message=exc.description), exc.code, headers

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unhandled error")
        return render_template("message.html", title=InternalServerError.name, message="Something went wrong on our side; please try again in a moment."), 500
