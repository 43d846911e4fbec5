"""The connection pool: a PostgreSQL connection that died while it sat idle in the pool (a restarted
server, a proxy's idle cut) is found out and replaced before a transaction gets it."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from gateway import db as db_module
from gateway.db import Database


@pytest.fixture
def postgres(clean_database: str) -> Database:
    if not clean_database.startswith("postgresql"):
        pytest.skip("SQLite has no server connection to lose")
    database = Database(clean_database, pool_size=1)
    yield database
    database.dispose()


def backend_pid(database: Database) -> int:
    with database.transaction() as session:
        return session.scalar(text("SELECT pg_backend_pid()"))


def cut(database: Database, pid: int) -> None:
    """What a server restart does to one connection: the server ends it; the pool does not know."""
    with Database(database.url, pool_size=1).transaction() as session:
        assert session.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_a_connection_cut_while_idle_is_replaced_before_use(postgres, monkeypatch):
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)  # every pooled connection counts as idle
    dead = backend_pid(postgres)
    cut(postgres, dead)
    assert backend_pid(postgres) != dead  # the transaction ran, on a new connection


def test_a_connection_in_steady_use_is_not_pinged(postgres, monkeypatch):
    """Under load a connection goes straight back to work: no extra round trip before each transaction."""
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 3600.0)
    pings: list[object] = []
    monkeypatch.setattr(postgres.engine.dialect, "do_ping", lambda connection: pings.append(connection) or True)
    for _ in range(3):
        backend_pid(postgres)
    assert pings == []
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
    backend_pid(postgres)
    assert len(pings) == 1
