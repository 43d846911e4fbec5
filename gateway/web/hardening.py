"""Response headers and log hygiene that hold for every route."""
from __future__ import annotations

import logging
import re

from flask import Flask, Response

from ..config import Settings

HSTS = "max-age=63072000; includeSubDomains"
TOKEN_IN_TEXT = re.compile(r"(paymenttoken=)[^&\s\"']+")


class RedactPaymentTokens(logging.Filter):
    """Access logs print request lines; a payment token in one would let a log reader pay or cancel."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "paymenttoken=" in message:
            record.msg, record.args = TOKEN_IN_TEXT.sub(r"\1[redacted]", message), None
        return True


def register(app: Flask, settings: Settings) -> None:
    for name in ("gunicorn.access", "werkzeug"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactPaymentTokens) for f in logger.filters):
            logger.addFilter(RedactPaymentTokens())
    if settings.is_production:
        app.after_request(_strict_transport)


def _strict_transport(response: Response) -> Response:
    response.headers["Strict-Transport-Security"] = HSTS
    return response
