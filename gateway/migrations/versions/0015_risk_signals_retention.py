"""an index for retention's deletes of risk signals

Revision ID: 0015
Revises: 0014

Retention deletes risk signals past GATEWAY_RETENTION_RISK_DAYS, oldest first: this index lets each
batch find them without reading the table. Built CONCURRENTLY on PostgreSQL, outside the migration's
transaction, so card attempts keep writing signals meanwhile. The downgrade drops it.
"""
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index("ix_risk_signals_at", "risk_signals", ["at"], postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_risk_signals_at", table_name="risk_signals", postgresql_concurrently=True)
