"""Fixtures: a migrated database (SQLite, or PostgreSQL when TEST_DATABASE_URL is set) and the app."""
from __future__ import annotations

import os
from typing import Iterator

import pytest
import responses as responses_lib
from click.testing import CliRunner
from flask.cli import ScriptInfo
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway import create_app
from gateway.cli import main
from gateway.config import Settings, load_settings
from gateway.db import make_engine
from gateway.migrate import upgrade
from gateway.services import Services

from .flow_helpers import wipe_database
from .protocol_helpers import PRIVATE_KEY

# Hypothesis: "ci" (the default, what `bash scripts/test.sh` runs) and "dev" (fewer examples, for
# the quick loop: HYPOTHESIS_PROFILE=dev). Tests name only what they need beyond the profile.
hypothesis_settings.register_profile("ci", max_examples=60, deadline=None, database=None,
                                     suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.register_profile("dev", max_examples=10, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _worker_database(url: str) -> str:
    """Under pytest-xdist each worker gets a database of its own, <name>_<worker> (e.g. test_gw0),
    created on the same server when missing."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    parsed = make_url(url)
    name = f"{parsed.database}_{worker}"
    admin = make_engine(parsed.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).scalar()
            if not exists:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


ENGINES = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.fixture(scope="session", params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every test runs on SQLite, and on PostgreSQL too when TEST_DATABASE_URL is set."""
    if request.param == "postgresql":
        url = _worker_database(os.environ["TEST_DATABASE_URL"])
        _reset_postgres(url)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'gateway.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """Console passwords are still argon2id, with the smallest cost instead of 64 MiB and 3 passes
    (0.2 s per hash or check, several per console test). Servers the tests start keep the real cost."""
    from argon2 import PasswordHasher

    from gateway.console import accounts

    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "HASHER", cheap)
        yield


@pytest.fixture
def clean_database(database_url: str) -> str:
    wipe_database(database_url)
    return database_url


@pytest.fixture
def settings(clean_database: str) -> Settings:
    return load_settings({}, database_url=clean_database, private_key=PRIVATE_KEY, public_url="https://gateway.test")


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["gateway"].db.dispose()


@pytest.fixture
def services(app) -> Services:  # type: ignore[no-untyped-def]
    return app.extensions["gateway"]


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def store() -> Iterator[responses_lib.RequestsMock]:
    """Stands in for the store's notificationurl (the outside world in unit tests)."""
    with responses_lib.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def cli(app):  # type: ignore[no-untyped-def]
    """The `gateway` command against the test app; fails the test on a non-zero exit."""
    def run(*args: str) -> str:
        result = CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))
        assert result.exit_code == 0, result.output
        return result.output

    return run


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup`, the tests that share module-scoped servers (``module_servers``), a
    browser or a built wheel run on one worker (one group per module and engine), so those are started
    once, not once per worker that happens to get one of the tests.

    A test marked ``any_engine`` checks what no database engine changes (how a page looks in the
    browser): it runs on SQLite only, not again on PostgreSQL."""
    kept, skipped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("database_url", "") if callspec else ""
        if engine and engine != ENGINES[0] and item.get_closest_marker("any_engine"):
            skipped.append(item)
            continue
        kept.append(item)
        if item.get_closest_marker("browser") or item.get_closest_marker("module_servers"):
            item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}-{engine}"))  # type: ignore[attr-defined]
        elif item.get_closest_marker("wheel"):
            item.add_marker(pytest.mark.xdist_group("wheel"))
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = kept
