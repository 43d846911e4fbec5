"""HTTP blueprints: thin adapters between requests and the payments package."""
from __future__ import annotations

from flask import current_app, request

from ..services import Services


def services() -> Services:
    return current_app.extensions["gateway"]


def public_url(path: str) -> str:
    """An absolute URL of ours; behind a proxy GATEWAY_PUBLIC_URL says what the world sees."""
    base = services().settings.public_url or request.url_root.rstrip("/")
    return base + path
