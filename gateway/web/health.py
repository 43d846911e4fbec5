"""Probes for load balancers and orchestrators.

``/healthz`` says the process answers (restart it if not); ``/readyz`` says it can serve payments:
the database answers and its schema is at the migration head this code expects (send no traffic
if not, for example while a deploy waits for ``gateway db upgrade``).
"""
from __future__ import annotations

from functools import lru_cache

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, jsonify
from sqlalchemy.exc import SQLAlchemyError

from ..migrate import alembic_config
from . import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    db = services().db
    try:
        with db.engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError:
        return jsonify(status="database unavailable"), 503
    expected = _expected_heads(db.url)
    if current != expected:
        return jsonify(status="migrations pending", database=sorted(current), expected=sorted(expected)), 503
    return jsonify(status="ok", migration=sorted(current))


@lru_cache(maxsize=4)
def _expected_heads(url: str) -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config(url)).get_heads())
