"""indexes so that every background, console and metrics query costs what it returns, not what history holds

Revision ID: 0012
Revises: 0010

Partial indexes hold only the rows the worker, /metrics and the needs-attention queue look for
(payments needing attention, credentials still sealed, unsettled ledger entries, due and dead
notifications, interrupted post-order requests); plain ones serve the console's exact-match search
fields and its keyset order. On PostgreSQL the store-key substring search gets a trigram index when
the pg_trgm extension can be created (it is trusted: the database owner may); without it, or on
SQLite, that one search stays a LIKE (the index of that name is then a plain one, so the models and
every schema agree). The downgrade drops them all (the extension stays: other
databases objects may use it).
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
TRIGRAM = "ix_payments_store_key_trgm"


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    for name, table, columns, where in INDEXES:
        condition = None if where is None else text(where)
        op.create_index(name, table, columns, postgresql_where=condition, sqlite_where=condition)
    if _postgres() and _trigrams_available():
        op.create_index(TRIGRAM, "payments", ["store_key"], postgresql_using="gin",
                        postgresql_ops={"store_key": "gin_trgm_ops"})
    else:  # the same name on every engine, so the models and the schema agree; the search stays a LIKE
        op.create_index(TRIGRAM, "payments", ["store_key"])


def _trigrams_available() -> bool:
    """Create pg_trgm if this role may; a savepoint keeps a refusal from aborting the migration."""
    bind = op.get_bind()
    if bind.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).scalar():
        return True
    if not bind.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar():
        return False
    savepoint = bind.begin_nested()
    try:
        bind.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except Exception:  # noqa: BLE001 - not allowed here: the store search stays a LIKE
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def downgrade() -> None:
    op.drop_index(TRIGRAM, table_name="payments")
    for name, table, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name=table)
