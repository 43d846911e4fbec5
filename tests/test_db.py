"""The connection pool: a PostgreSQL connection that died while it sat idle in the pool (a restarted
server, a proxy's idle cut) is found out and replaced before a transaction gets it. On SQLite, a read
never waits for a writer, and writers wait briefly and in turn."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Iterator

import pytest
from sqlalchemy import text

from gateway import db as db_module
from gateway.config import load_settings
from gateway.db import Database
from gateway.payments.queries import find_payment


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


@pytest.fixture
def sqlite(clean_database: str) -> Iterator[Database]:
    if not clean_database.startswith("sqlite"):
        pytest.skip("SQLite's locking only")
    database = Database(clean_database, pool_size=4)
    yield database
    database.dispose()


def test_every_sqlite_connection_waits_for_a_writer_within_the_request_budget(sqlite):
    with sqlite.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        busy_ms = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert 1000 <= busy_ms < load_settings({}).request_budget_seconds * 1000


def test_a_page_read_does_not_wait_for_a_writer(sqlite):
    services = SimpleNamespace(db=sqlite)
    writing, done = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with sqlite.transaction() as session:
            session.execute(text("CREATE TABLE held (x INTEGER)"))
            writing.set()
            done.wait(5)

    writer = threading.Thread(target=hold_the_write_lock)
    writer.start()
    try:
        assert writing.wait(5)
        started = time.monotonic()
        assert find_payment(services, "a" * 22) is None  # type: ignore[arg-type]
        assert time.monotonic() - started < 1
    finally:
        done.set()
        writer.join()


def test_sqlite_writers_of_one_process_take_turns_in_arrival_order(sqlite):
    """SQLite's busy handler retries by sleeping longer each time, so a late writer overtook early ones."""
    with sqlite.transaction() as session:
        session.execute(text("CREATE TABLE turns (n INTEGER)"))
    order: list[int] = []

    def write(n: int) -> None:
        with sqlite.transaction() as session:
            session.execute(text("INSERT INTO turns VALUES (:n)"), {"n": n})
            order.append(n)
            time.sleep(0.08)

    writers = []
    for n in range(6):
        writers.append(threading.Thread(target=write, args=(n,)))
        writers[-1].start()
        time.sleep(0.03)
    for writer in writers:
        writer.join()
    assert order == list(range(6))
