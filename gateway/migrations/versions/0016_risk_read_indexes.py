"""indexes for the risk read at every card attempt

Revision ID: 0016
Revises: 0015

The risk step reads, at every card attempt, the store's newest judged attempts and the attempts on
the same order. Through (store_key, at) alone both read every attempt the store had in the window,
so at a busy store (a sale, or an attack) each attempt cost more than the last. (store_key, id)
reads the newest ones first and stops; (store_key, orderid, at) finds the order's own. Built
CONCURRENTLY on PostgreSQL, outside the migration's transaction, so card attempts keep writing
signals meanwhile. The downgrade drops them.
"""
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

INDEXES = {  # name: columns of risk_signals; copied, not imported: a migration is frozen
    "ix_risk_signals_store_id": ["store_key", "id"],
    "ix_risk_signals_order_at": ["store_key", "orderid", "at"],
}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, columns in INDEXES.items():
            op.create_index(name, "risk_signals", columns, postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.drop_index(name, table_name="risk_signals", postgresql_concurrently=True)
