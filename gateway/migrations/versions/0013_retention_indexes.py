"""indexes for retention's deletes

Revision ID: 0013
Revises: 0012

Retention (gateway.payments.retention) deletes old rows by their time, oldest first: each of these
lets a batch find its rows without reading the whole table. Replay records are indexed by endpoint
first, as only checkout records are ever deleted. On PostgreSQL they are built CONCURRENTLY, outside
the migration's transaction, so checkouts and payments keep writing these tables meanwhile.
The downgrade drops them.
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

INDEXES = {  # name: (table, columns); copied, not imported: a migration is frozen
    "ix_seen_requests_endpoint_created_at": ("seen_requests", ["endpoint", "created_at"]),
    "ix_payment_events_at": ("payment_events", ["at"]),
    "ix_notification_attempts_started_at": ("notification_attempts", ["started_at"]),
    "ix_console_sign_ins_last_seen_at": ("console_sign_ins", ["last_seen_at"]),
}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, (table, columns) in INDEXES.items():
            op.create_index(name, table, columns, postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, (table, _columns) in reversed(INDEXES.items()):
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
