"""The connection pool: a PostgreSQL connection that died while it sat idle in the pool (a restarted
server, a proxy's idle cut) is found out and replaced before a transaction gets it. On SQLite, a read
never waits for a writer, and writers wait briefly and in turn."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from gateway import db as db_module
from gateway.config import load_settings
from gateway.db import Database
from gateway.payments.queries import PaymentView, find_payment, find_view

from . import factories
from .live import ROOT


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


LOOKUP_PID = select(func.pg_backend_pid())


def test_a_lookup_connection_cut_while_idle_is_replaced_before_use(postgres, monkeypatch):
    """Page views read on connections of their own (Database.lookup): a restart is found out there too."""
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
    dead = postgres.lookup(LOOKUP_PID, {})["pg_backend_pid"]
    cut(postgres, dead)
    assert postgres.lookup(LOOKUP_PID, {})["pg_backend_pid"] != dead


def test_a_lookup_connection_cut_in_use_fails_one_read_as_a_database_error_and_is_replaced(postgres, monkeypatch):
    """Not idle, so not pinged: the read that finds it dead fails as SQLAlchemy reports a dead connection
    (the error page, the health check), and the pool drops it instead of handing it out again."""
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 3600.0)
    dead = postgres.lookup(LOOKUP_PID, {})["pg_backend_pid"]
    cut(postgres, dead)
    with pytest.raises(DBAPIError) as failed:
        postgres.lookup(LOOKUP_PID, {})
    assert failed.value.connection_invalidated
    assert postgres.lookup(LOOKUP_PID, {})["pg_backend_pid"] != dead


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


@pytest.mark.parametrize("read", [find_payment, find_view])
def test_a_page_read_does_not_wait_for_a_writer(sqlite, read):
    services = SimpleNamespace(db=sqlite)
    writing, done = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with sqlite.transaction() as session:
            session.execute(text("CREATE TABLE IF NOT EXISTS held (x INTEGER)"))
            writing.set()
            done.wait(5)

    writer = threading.Thread(target=hold_the_write_lock)
    writer.start()
    try:
        assert writing.wait(5)
        started = time.monotonic()
        assert read(services, "a" * 22) is None  # type: ignore[arg-type]
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


HOLD = """
import sys, time
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from gateway.db import Database
database = Database(sys.argv[1])
with database.transaction() as session:
    session.execute(text(f"INSERT INTO {sys.argv[3]} VALUES (1)"))
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
database.dispose()
"""


def _another_worker_holding_the_write_lock(url: str, seconds: float, table: str):  # type: ignore[no-untyped-def]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url, str(seconds), table], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def test_a_writer_of_another_worker_is_waited_for_on_the_file_lock_and_followed_at_once(sqlite):
    """Between gunicorn's workers SQLite's busy handler slept up to 100 ms a try: p99 over a second."""
    with sqlite.transaction() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS across (n INTEGER)"))
        session.execute(text("DELETE FROM across"))
    holder = _another_worker_holding_the_write_lock(sqlite.url, 0.6, "across")
    started = time.monotonic()
    with sqlite.transaction() as session:
        waited = time.monotonic() - started
        session.execute(text("INSERT INTO across VALUES (2)"))
    holder.wait(10)
    assert 0.3 < waited < 0.6 + 0.25  # it waited for the other worker, and went on within a few ms of it
    with sqlite.transaction() as session:
        assert session.scalar(text("SELECT group_concat(n) FROM across")) == "1,2"
    assert Path(sqlite.url.split("///", 1)[1] + "-writer").exists()


def test_a_writer_stops_waiting_for_the_file_lock_at_the_busy_deadline(sqlite, monkeypatch):
    """A worker stuck while holding the lock cannot hang the others: SQLite then refuses, as before."""
    with sqlite.transaction() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS stuck (n INTEGER)"))
    monkeypatch.setattr(db_module, "SQLITE_BUSY_SECONDS", 0.3)
    impatient = Database(sqlite.url)  # its busy timeout is 0.3 s too
    holder = _another_worker_holding_the_write_lock(sqlite.url, 5, "stuck")
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError, match="locked"):
            with impatient.transaction() as session:
                session.execute(text("INSERT INTO stuck VALUES (2)"))
    finally:
        holder.kill()
        holder.wait(10)
        impatient.dispose()
    assert 0.5 < time.monotonic() - started < 2


@pytest.mark.parametrize("paid", [False, True])
def test_a_page_lookup_reads_the_payment_as_the_orm_loads_it(services, paid):
    """The page's lookup runs on the driver itself: its columns must come back as SQLAlchemy's types make
    them (states as enums, aware UTC times, the items as a list, the notification joined)."""
    with factories.bound(services):
        charge = factories.paid_charge() if paid else None
        if charge is not None:
            factories.NotificationFactory(charge=charge)
        token = (factories.PaymentFactory() if charge is None else charge.payment).token
    viewed = find_view(services, token)
    assert viewed == PaymentView.of(find_payment(services, token))
    assert viewed.expires_at.tzinfo is not None and isinstance(viewed.items, list) and len(viewed.items) == 3
    assert (viewed.notification_id is not None) is paid
    assert find_view(services, "b" * 22) is None
