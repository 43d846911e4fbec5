"""Migration 0014 adds the risk step's tables and goes back, on both engines."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from gateway.db import make_engine
from gateway.migrate import alembic_config, upgrade
from gateway.models import utcnow

RISK_TABLES = {"risk_signals", "risk_thresholds"}


def tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return set(sa.inspect(connection).get_table_names())


def test_migration_0014_adds_the_risk_tables_and_goes_back(clean_database):
    engine = make_engine(clean_database)
    try:
        assert RISK_TABLES <= tables(engine)
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO risk_thresholds (store_key, attack_decline_percent, attack_min_attempts, "
                "attack_attempts_per_minute, card_declines, address_declines, network_declines, payment_cards, "
                "order_cards, card_stores, updated_by, updated_at) VALUES ('s', 50, 20, 60, 2, 3, 6, 3, 4, 3, 'op', :at)"),
                {"at": utcnow()})

        command.downgrade(alembic_config(clean_database), "0013")
        assert not RISK_TABLES & tables(engine)

        upgrade(clean_database)
        assert RISK_TABLES <= tables(engine)
    finally:
        engine.dispose()
