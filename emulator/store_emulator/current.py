"""The running emulator's store and settings, for the request being served."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app, request

from .store import Store


def store() -> Store:
    return current_app.extensions["emulator_store"]


def setting(name: str) -> Any:
    """GATEWAY_URL, PRIVATE_KEY or PUBLIC_URL, as create_emulator_app was given them."""
    return current_app.config[f"EMULATOR_{name}"]


def base_url() -> str:
    """The emulator's own base URL, which its cancel, error, notification and return URLs start with."""
    return setting("PUBLIC_URL") or request.url_root.rstrip("/")


def domain() -> str:
    """The store's domain name, one of the parts of the returnurl's `k` check."""
    return urlsplit(base_url()).hostname or ""
