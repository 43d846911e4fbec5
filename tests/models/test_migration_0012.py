"""Migration 0012: the indexes that keep background, console and metrics queries flat as history grows."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from gateway.db import make_engine
from gateway.migrate import alembic_config, upgrade

from ..flow_helpers import wipe_database

PARTIAL = {"ix_payments_attention", "ix_payments_sealed", "ix_ledger_entries_unsettled", "ix_ledger_entries_request_key",
           "ix_notifications_due", "ix_notifications_dead", "ix_post_order_requests_processing"}
PLAIN = {"ix_payments_created_at_id", "ix_payments_invoice", "ix_payments_amount_total", "ix_payments_card_last4",
         "ix_payments_store_key_prefix", "ix_payments_store_key_created_at"}


def indexes(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {index["name"] for table in ("payments", "ledger_entries", "notifications", "post_order_requests")
                for index in inspector.get_indexes(table)}
    finally:
        engine.dispose()


def test_migration_0012_adds_the_history_indexes_and_takes_them_back(clean_database):
    try:
        assert PARTIAL | PLAIN <= indexes(clean_database)
        command.downgrade(alembic_config(clean_database), "0010")
        assert not (PARTIAL | PLAIN) & indexes(clean_database)
    finally:
        upgrade(clean_database)
        wipe_database(clean_database)
    assert PARTIAL | PLAIN <= indexes(clean_database)


def test_the_store_prefix_index_serves_like_whatever_the_collation_on_postgresql(clean_database):
    if not clean_database.startswith("postgresql"):
        pytest.skip("SQLite has no operator classes")
    engine = make_engine(clean_database)
    try:
        with engine.connect() as connection:
            definition = connection.scalar(sa.text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_payments_store_key_prefix'"))
    finally:
        engine.dispose()
    assert "varchar_pattern_ops" in definition
