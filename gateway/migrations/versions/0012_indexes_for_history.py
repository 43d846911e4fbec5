"""indexes so that every background, console and metrics query costs what it returns, not what history holds

Revision ID: 0012
Revises: 0010

Partial indexes hold only the rows the worker, /metrics and the needs-attention queue look for
(payments needing attention, credentials still sealed, unsettled ledger entries, due and dead
notifications, interrupted post-order requests); plain ones serve the console's exact-match search
fields and its keyset order. The store is searched by the start of its key: on PostgreSQL its index
compares by character (varchar_pattern_ops), so a LIKE 'prefix%' uses it whatever the collation. No
trigram index: over 2,000 store keys repeated a million times each trigram's list is the whole table
(a pg_trgm search took 250 ms at 1M payments, bench/history.py), and no other field is searched by
substring. The downgrade drops them all.
"""
from alembic import op
from sqlalchemy import text

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

# name, table, columns, WHERE (None: every row); the models declare the same (gateway/models).
INDEXES = (
    ("ix_payments_attention", "payments", ["attention_at"], "attention <> ''"),
    ("ix_payments_sealed", "payments", ["state", "expires_at"], "credentials_sealed IS NOT NULL"),
    ("ix_payments_created_at_id", "payments", ["created_at", "id"], None),
    ("ix_payments_invoice", "payments", ["invoice"], None),
    ("ix_payments_amount_total", "payments", ["amount_total"], None),
    ("ix_payments_card_last4", "payments", ["card_last4"], None),
    ("ix_payments_store_key_created_at", "payments", ["store_key", "created_at"], None),
    ("ix_ledger_entries_unsettled", "ledger_entries", ["charge_id"], "outcome IN ('pending', 'unknown') OR attention <> ''"),
    ("ix_ledger_entries_request_key", "ledger_entries", ["request_key"], "request_key IS NOT NULL"),
    ("ix_notifications_due", "notifications", ["next_attempt_at"], "state = 'pending'"),
    ("ix_notifications_dead", "notifications", ["payment_id"], "state = 'dead'"),
    ("ix_post_order_requests_processing", "post_order_requests", ["claimed_at"], "state = 'processing'"),
)


def upgrade() -> None:
    for name, table, columns, where in INDEXES:
        condition = None if where is None else text(where)
        op.create_index(name, table, columns, postgresql_where=condition, sqlite_where=condition)
    op.create_index("ix_payments_store_key_prefix", "payments", ["store_key"],
                    postgresql_ops={"store_key": "varchar_pattern_ops"})


def downgrade() -> None:
    op.drop_index("ix_payments_store_key_prefix", table_name="payments")
    for name, table, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name=table)
