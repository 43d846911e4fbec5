"""the risk step's signals and each store's thresholds

Revision ID: 0014
Revises: 0013

Two new tables (gateway.models.risk): ``risk_signals``, one row per card attempt the risk step saw
(a keyed card fingerprint, never the number), and ``risk_thresholds``, a store's own thresholds.
Nothing existing changes; the downgrade drops both tables and what they held.
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

OUTCOMES = ("approved", "declined", "unknown", "refused", "challenged")  # copied: a migration is frozen
THRESHOLDS = ("attack_decline_percent", "attack_min_attempts", "attack_attempts_per_minute", "card_declines",
              "address_declines", "network_declines", "payment_cards", "order_cards", "card_stores")


def upgrade() -> None:
    op.create_table(
        "risk_signals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("store_key", sa.String(255), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=False),
        sa.Column("orderid", sa.BigInteger(), nullable=False),
        sa.Column("card_fingerprint", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.CheckConstraint("outcome IN (" + ", ".join(f"'{o}'" for o in OUTCOMES) + ")", name="ck_risk_signals_outcome"),
    )
    op.create_index("ix_risk_signals_store_at", "risk_signals", ["store_key", "at"])
    op.create_index("ix_risk_signals_card_at", "risk_signals", ["card_fingerprint", "at"])
    op.create_index("ix_risk_signals_network_at", "risk_signals", ["network", "at"])
    op.create_index("ix_risk_signals_payment_id", "risk_signals", ["payment_id"])
    op.create_index("ix_risk_signals_address", "risk_signals", ["address"])
    op.create_table(
        "risk_thresholds",
        sa.Column("store_key", sa.String(255), primary_key=True),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in THRESHOLDS),
        sa.Column("updated_by", sa.String(120), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("attack_decline_percent BETWEEN 1 AND 100", name="ck_risk_thresholds_decline_percent"),
        sa.CheckConstraint(" AND ".join(f"{name} >= 1" for name in THRESHOLDS[1:]), name="ck_risk_thresholds_positive"),
    )


def downgrade() -> None:
    op.drop_table("risk_thresholds")
    op.drop_table("risk_signals")
