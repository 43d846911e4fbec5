"""HTTP blueprints: the edge where the wire protocol is read and signed, and the shopper's pages;
thin adapters between requests and the payments package."""
from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from ..protocol.errors import ErrorCode, ProtocolError
from ..services import current as services

__all__ = ["public_url", "read_body", "services", "signed_json"]


def public_url(path: str) -> str:
    """An absolute URL of ours; behind a proxy GATEWAY_PUBLIC_URL says what the world sees."""
    base = services().settings.public_url or request.url_root.rstrip("/")
    return base + path


def read_body() -> bytes:
    """The whole request body (sized or chunked), within the app's MAX_CONTENT_LENGTH."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    too_large = ProtocolError(ErrorCode.BAD_REQUEST, f"request body is too large (more than {limit} bytes)")
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge as exc:
        raise too_large from exc
    except ClientDisconnected as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "request body ended before its declared length") from exc
    if request.content_length is None and len(body) >= limit:
        raise too_large  # a chunked body is cut at the limit, not refused, by the stream itself
    return body


def signed_json(message: dict[str, Any]) -> Response:
    """A signed protocol answer: it carries a payment token or a money outcome, so no cache keeps it."""
    response = jsonify(message)
    response.headers["Cache-Control"] = "no-store"
    return response
