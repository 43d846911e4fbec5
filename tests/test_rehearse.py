"""scripts/rehearse.py, the production rehearsal docs/go-live.md describes: it must pass on this code, and say
clearly when it cannot run."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from gateway.db import make_engine

from .live import ROOT

pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.xdist_group("rehearsal")]

SCRIPT = ROOT / "scripts" / "rehearse.py"
REDIS_URL = "redis://127.0.0.1:6379/7"  # a Redis database of this test's own: its card-attempt counters start at 0


def _rehearsal_database() -> str:
    """``<TEST_DATABASE_URL's database>_rehearsal``, created when missing and emptied (the release migrates it)."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("the rehearsal needs PostgreSQL: set TEST_DATABASE_URL")
    url = make_url(base)
    name = f"{url.database}_rehearsal"
    admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if not connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError:
        pytest.skip("PostgreSQL is unreachable")
    finally:
        admin.dispose()
    rehearsal = url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(rehearsal)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()
    return rehearsal


def _empty_redis() -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).flushdb()
    except redis.exceptions.ConnectionError:
        pytest.skip("the rehearsal needs Redis at 127.0.0.1:6379")


def _rehearse(*arguments: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "emulator")])}
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_production_rehearsal_buys_voids_and_refunds_over_https_under_production_settings():
    database = _rehearsal_database()
    _empty_redis()
    done = _rehearse("--database-url", database, "--redis-url", REDIS_URL)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":", 1)[0] for line in lines[:-1]] == [
        "ok    emulator; keys; release, then web and worker (the Procfile)", "ok    purchase",
        "ok    void (the whole order, not settled)", "ok    purchase", "ok    gateway sandbox settle",
        "ok    partial refund of $15.00", "ok    refund of what is left (amount blank)"]
    assert "approved: $25.00 back" in lines[-2] and "(order refunded)" in lines[-2]
    assert lines[-1].startswith("production rehearsal passed")


def test_rehearsal_refuses_a_database_production_would_refuse_before_starting_anything():
    done = _rehearse("--database-url", "sqlite:///rehearsal.sqlite3")
    assert done.returncode == 2 and "must name a PostgreSQL database" in done.stderr and done.stdout == ""
