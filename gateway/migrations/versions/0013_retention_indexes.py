"""indexes for retention's deletes

Revision ID: 0013
Revises: 0010

Retention (gateway.payments.retention) deletes old rows by their time: each of these lets a batch
find its rows without reading the whole table. On PostgreSQL they are built CONCURRENTLY, outside
the migration's transaction, so checkouts and payments keep writing these tables meanwhile.
The downgrade drops them.
"""
from alembic import op

revision = "0013"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEXES = (  # (table, column): copied, not imported: a migration is frozen
    ("seen_requests", "created_at"),
    ("payment_events", "at"),
    ("notification_attempts", "started_at"),
    ("console_sign_ins", "last_seen_at"),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for table, column in INDEXES:
            op.create_index(f"ix_{table}_{column}", table, [column], postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for table, column in reversed(INDEXES):
            op.drop_index(f"ix_{table}_{column}", table_name=table, postgresql_concurrently=True)
