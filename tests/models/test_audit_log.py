"""The audit log is append-only in the database itself: no UPDATE, DELETE or TRUNCATE by whoever
connects (migration 0010), and the least-privilege role docs/security.md describes cannot even try."""
from __future__ import annotations

from typing import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, ProgrammingError

from gateway.db import make_engine
from gateway.migrate import alembic_config, upgrade
from gateway.models import utcnow

from ..flow_helpers import wipe_database

AUDIT_ROW = {"at": utcnow(), "actor": "alice", "action": "payment.void", "target": "payment:1",
             "reason": "store asked", "outcome": "voided", "details": "{}"}
INSERT = sa.text("INSERT INTO console_audit (at, actor, action, target, reason, outcome, details) "
                 "VALUES (:at, :actor, :action, :target, :reason, :outcome, :details)")


@pytest.fixture
def audited(clean_database: str) -> Iterator[Engine]:
    """A database whose audit log holds one record; emptied again afterwards."""
    engine = make_engine(clean_database)
    with engine.begin() as connection:
        connection.execute(INSERT, AUDIT_ROW)
    try:
        yield engine
    finally:
        engine.dispose()
        wipe_database(clean_database)


def audit_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT COUNT(*) FROM console_audit")).scalar_one()


def postgres_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE and roles are PostgreSQL's")


@pytest.mark.parametrize("statement", ["UPDATE console_audit SET actor = 'mallory'",
                                       "DELETE FROM console_audit",
                                       "DELETE FROM console_audit WHERE action = 'payment.void'"])
def test_audit_log_refuses_update_and_delete(audited, statement):
    """Raw SQL on the gateway's own connection cannot change or remove a record (the ORM is not asked)."""
    with pytest.raises(DBAPIError, match="append-only"):
        with audited.begin() as connection:
            connection.execute(sa.text(statement))
    assert audit_count(audited) == 1


def test_audit_log_refuses_truncate(audited):
    postgres_only(audited)
    with pytest.raises(DBAPIError, match="append-only"):
        with audited.begin() as connection:
            connection.execute(sa.text("TRUNCATE console_audit"))
    assert audit_count(audited) == 1


def test_audit_log_still_takes_new_records(audited):
    with audited.begin() as connection:
        connection.execute(INSERT, {**AUDIT_ROW, "action": "login"})
    assert audit_count(audited) == 2


def test_migration_0010_goes_back_to_refusing_updates_only(audited, clean_database):
    """Down to 0009 the old guard stays (UPDATE refused) and DELETE is allowed again; up again refuses it."""
    command.downgrade(alembic_config(clean_database), "0009")
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            with audited.begin() as connection:
                connection.execute(sa.text("UPDATE console_audit SET actor = 'mallory'"))
        with audited.begin() as connection:
            connection.execute(sa.text("DELETE FROM console_audit"))
        assert audit_count(audited) == 0
    finally:
        upgrade(clean_database)
    with audited.begin() as connection:
        connection.execute(INSERT, AUDIT_ROW)
    with pytest.raises(DBAPIError, match="append-only"):
        with audited.begin() as connection:
            connection.execute(sa.text("DELETE FROM console_audit"))


@pytest.fixture
def gateway_role(audited: Engine) -> Iterator[tuple[Engine, str]]:
    """The gateway's runtime role with exactly the grants docs/security.md lists (one per database:
    roles are the server's, and other databases on it may run this test at the same time)."""
    postgres_only(audited)
    role = f"gateway_app_{make_url(str(audited.url)).database}"
    with audited.begin() as connection:
        connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        connection.exec_driver_sql(f'CREATE ROLE "{role}" NOLOGIN')
        for grant in runtime_grants(role):
            connection.exec_driver_sql(grant)
    try:
        yield audited, role
    finally:
        with audited.begin() as connection:
            connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
            connection.exec_driver_sql(f'DROP ROLE "{role}"')


def runtime_grants(role: str) -> list[str]:
    """The GRANTs of docs/security.md's least-privilege role, for ``role``."""
    return [
        f'GRANT USAGE ON SCHEMA public TO "{role}"',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"',
        f'REVOKE UPDATE, DELETE, TRUNCATE ON console_audit FROM "{role}"',
        f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"',
    ]


@pytest.mark.parametrize("statement", ["UPDATE console_audit SET actor = 'mallory'", "DELETE FROM console_audit",
                                       "TRUNCATE console_audit", "ALTER TABLE console_audit DISABLE TRIGGER USER",
                                       "DROP TABLE console_audit"])
def test_least_privilege_role_cannot_rewrite_the_audit_log(gateway_role, statement):
    """Not even by switching the triggers off: only the owner (the migrations' role) could."""
    engine, role = gateway_role
    with pytest.raises(ProgrammingError, match="permission denied|must be owner"):
        with engine.begin() as connection:
            connection.exec_driver_sql(f'SET LOCAL ROLE "{role}"')
            connection.exec_driver_sql(statement)
    assert audit_count(engine) == 1


def test_least_privilege_role_appends_to_the_audit_log_and_works_the_other_tables(gateway_role):
    engine, role = gateway_role
    with engine.begin() as connection:
        connection.exec_driver_sql(f'SET LOCAL ROLE "{role}"')
        connection.execute(INSERT, {**AUDIT_ROW, "action": "login"})
        connection.exec_driver_sql("DELETE FROM console_sign_ins")
        connection.exec_driver_sql("UPDATE payments SET attention = ''")
    assert audit_count(engine) == 2
