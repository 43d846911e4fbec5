"""one word, one meaning: payments, charges and console sign-ins, named as docs/glossary.md says

Revision ID: 0008
Revises: 0007

Tables: payment_sessions -> payments, transactions -> charges, console_sessions -> console_sign_ins.
Columns: a charge's, a notification's and a payment event's session_id -> payment_id; a charge's
processor_txn_id -> processor_transaction_id; a ledger entry's transaction_id -> charge_id. Indexes
and named constraints follow their tables. Nothing but names changes; rows stay as they are.
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = [("payment_sessions", "payments"), ("transactions", "charges"), ("console_sessions", "console_sign_ins")]
# (table as renamed, old column, new column)
COLUMNS = [
    ("charges", "session_id", "payment_id"),
    ("charges", "processor_txn_id", "processor_transaction_id"),
    ("notifications", "session_id", "payment_id"),
    ("payment_events", "session_id", "payment_id"),
    ("ledger_entries", "transaction_id", "charge_id"),
]
# (table as renamed, old index, new index, its column as renamed)
INDEXES = [
    ("payments", "ix_payment_sessions_orderid", "ix_payments_orderid", "orderid"),
    ("payments", "ix_payment_sessions_randomkey", "ix_payments_randomkey", "randomkey"),
    ("payments", "ix_payment_sessions_state", "ix_payments_state", "state"),
    ("payments", "ix_payment_sessions_store_key", "ix_payments_store_key", "store_key"),
    ("charges", "ix_transactions_processor_txn_id", "ix_charges_processor_transaction_id", "processor_transaction_id"),
    ("ledger_entries", "ix_ledger_entries_transaction_id", "ix_ledger_entries_charge_id", "charge_id"),
    ("payment_events", "ix_payment_events_session_id", "ix_payment_events_payment_id", "payment_id"),
    ("console_sign_ins", "ix_console_sessions_account_id", "ix_console_sign_ins_account_id", "account_id"),
]
_PAYMENT_STATES = "state IN ('open', 'authorizing', 'approved', 'completed', 'rejected', 'failed', 'cancelled')"
# (table as renamed, old name, new name, CHECK condition or the UNIQUE columns); values frozen here.
CONSTRAINTS: list[tuple[str, str, str, str | list[str]]] = [
    ("payments", "uq_session_request", "uq_payment_request", ["store_key", "orderid", "randomkey"]),
    ("payments", "ck_payment_sessions_state", "ck_payments_state", _PAYMENT_STATES),
    ("payments", "ck_payment_sessions_amount_total", "ck_payments_amount_total", "amount_total > 0"),
    ("payments", "ck_payment_sessions_tax_total", "ck_payments_tax_total", "tax_total >= 0"),
    ("payments", "ck_payment_sessions_shipping_total", "ck_payments_shipping_total", "shipping_total >= 0"),
    ("payments", "ck_payment_sessions_discount", "ck_payments_discount", "discount >= 0"),
    ("payments", "ck_payment_sessions_attempt", "ck_payments_attempt", "attempt >= 0"),
    ("payments", "ck_payment_sessions_decline_count", "ck_payments_decline_count", "decline_count >= 0"),
    ("payments", "ck_payment_sessions_failures", "ck_payments_failures", "failures >= 0"),
    ("charges", "uq_transaction_processor_id", "uq_charge_processor_transaction_id",
     ["processor", "processor_transaction_id"]),
    ("charges", "ck_transactions_amount", "ck_charges_amount", "amount > 0"),
    ("charges", "ck_transactions_refunded", "ck_charges_refunded", "refunded >= 0 AND refunded <= amount"),
]


def upgrade() -> None:
    for old, new in TABLES:
        op.rename_table(old, new)
    for table, old, new in COLUMNS:
        op.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")
    _rename_indexes(forward=True)
    _rename_constraints(forward=True)


def downgrade() -> None:
    _rename_constraints(forward=False)
    _rename_indexes(forward=False)
    for table, old, new in reversed(COLUMNS):
        op.execute(f"ALTER TABLE {table} RENAME COLUMN {new} TO {old}")
    for old, new in reversed(TABLES):
        op.rename_table(new, old)


# Indexes and constraints are renamed while tables and columns carry their new names (after the
# upgrade's renames, before the downgrade's), so the names above always name what is there.
def _rename_indexes(forward: bool) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, old, new, column in INDEXES:
        source, target = (old, new) if forward else (new, old)
        if postgres:
            op.execute(f"ALTER INDEX {source} RENAME TO {target}")
        else:  # SQLite cannot rename an index: build it again under its new name
            op.drop_index(source, table_name=table)
            op.create_index(target, table, [column])


def _rename_constraints(forward: bool) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table, old, new, _definition in CONSTRAINTS:
            source, target = (old, new) if forward else (new, old)
            op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {source} TO {target}")
        return
    # SQLite keeps a constraint's name in its table's definition: rebuild each table once.
    for table in dict.fromkeys(table for table, *_ in CONSTRAINTS):
        with op.batch_alter_table(table, recreate="always") as batch:
            for t, old, new, definition in CONSTRAINTS:
                if t != table:
                    continue
                source, target = (old, new) if forward else (new, old)
                kind = "unique" if isinstance(definition, list) else "check"
                batch.drop_constraint(source, type_=kind)
                if isinstance(definition, list):
                    batch.create_unique_constraint(target, definition)
                else:
                    batch.create_check_constraint(target, definition)
