"""Migration 0013 adds the indexes retention deletes by, keeps every row, and goes back, on both engines."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from gateway.db import make_engine
from gateway.migrate import alembic_config, upgrade
from gateway.models import utcnow

RETENTION_INDEXES = {
    "seen_requests": "ix_seen_requests_endpoint_created_at",
    "payment_events": "ix_payment_events_at",
    "notification_attempts": "ix_notification_attempts_started_at",
    "console_sign_ins": "ix_console_sign_ins_last_seen_at",
}


def indexes(engine: sa.Engine) -> dict[str, set[str]]:
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        return {table: {index["name"] for index in inspector.get_indexes(table)} for table in RETENTION_INDEXES}


def test_migration_0013_adds_the_retention_indexes_and_goes_back(clean_database):
    engine = make_engine(clean_database)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO seen_requests (randomkey, endpoint, digest, created_at) "
                                       "VALUES ('rk', 'checkout', 'd', :at)"), {"at": utcnow()})
        assert all(RETENTION_INDEXES[table] in names for table, names in indexes(engine).items())

        command.downgrade(alembic_config(clean_database), "0012")
        assert not any(RETENTION_INDEXES[table] in names for table, names in indexes(engine).items())

        upgrade(clean_database)
        assert all(RETENTION_INDEXES[table] in names for table, names in indexes(engine).items())
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT randomkey FROM seen_requests")).scalars().all() == ["rk"]
    finally:
        engine.dispose()
