"""The OpenAPI document, for integrators and for the property-based API tests."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from flask import Blueprint, jsonify

from .openapi import build_spec

bp = Blueprint("api_docs", __name__)


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    return build_spec()


@bp.get("/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    return jsonify(_document())
