"""Fixtures: a migrated database (SQLite, or PostgreSQL when TEST_DATABASE_URL is set) and the app."""
from __future__ import annotations

import os
from typing import Iterator

import pytest
import responses as responses_lib
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import text

from gateway import create_app
from gateway.cli import main
from gateway.config import Settings, load_settings
from gateway.db import make_engine
from gateway.migrate import upgrade
from gateway.services import Services

from .flow_helpers import wipe_database
from .protocol_helpers import PRIVATE_KEY


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
        url = os.environ["TEST_DATABASE_URL"]
        _reset_postgres(url)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'gateway.sqlite3'}"
    upgrade(url)
    return url


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
