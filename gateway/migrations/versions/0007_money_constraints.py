"""the database guards money: CHECKs on every state, kind and amount; transactions.refunded

Revision ID: 0007
Revises: 0006

State and kind columns stay VARCHARs of the same length, now limited by a named CHECK to their
enum's values. ``transactions.amount_refunded`` and ``voided`` (written, never read) give way to
``refunded``: the sum of the charge's refund entries that hold money (pending, unknown or
approved), which may never exceed the captured amount. The upgrade fails, changing nothing, if a
row already breaks a constraint; the downgrade computes the two old columns back from the ledger.
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _one_of(column: str, *values: str) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


# Named CHECKs per table, as the models declare them (values copied, not imported: a migration is frozen).
CHECKS: dict[str, list[tuple[str, str]]] = {
    "payment_sessions": [
        ("ck_payment_sessions_state",
         _one_of("state", "open", "authorizing", "approved", "completed", "rejected", "failed", "cancelled")),
        ("ck_payment_sessions_amount_total", "amount_total > 0"),
        ("ck_payment_sessions_tax_total", "tax_total >= 0"),
        ("ck_payment_sessions_shipping_total", "shipping_total >= 0"),
        ("ck_payment_sessions_discount", "discount >= 0"),
        ("ck_payment_sessions_attempt", "attempt >= 0"),
        ("ck_payment_sessions_decline_count", "decline_count >= 0"),
        ("ck_payment_sessions_failures", "failures >= 0"),
    ],
    "transactions": [
        ("ck_transactions_amount", "amount > 0"),
        ("ck_transactions_refunded", "refunded >= 0 AND refunded <= amount"),
    ],
    "ledger_entries": [
        ("ck_ledger_entries_kind", _one_of("kind", "sale", "void", "refund")),
        ("ck_ledger_entries_outcome", _one_of("outcome", "pending", "approved", "declined", "unknown")),
        ("ck_ledger_entries_amount", "amount > 0"),
    ],
    "post_order_requests": [
        ("ck_post_order_requests_state", _one_of("state", "processing", "answered")),
    ],
    "notifications": [
        ("ck_notifications_state", _one_of("state", "pending", "delivered", "dead")),
        ("ck_notifications_attempts", "attempts >= 0"),
        ("ck_notifications_lease", "lease >= 0"),
    ],
    "sandbox_charges": [
        ("ck_sandbox_charges_amount", "amount > 0"),
        ("ck_sandbox_charges_refunded", "refunded >= 0 AND refunded <= amount"),
    ],
    "seen_requests": [
        ("ck_seen_requests_endpoint", _one_of("endpoint", "checkout", "post-order")),
    ],
    "console_accounts": [
        ("ck_console_accounts_role", _one_of("role", "viewer", "operator")),
    ],
}

REFUNDS_HOLDING = (
    "SELECT COALESCE(SUM(amount), 0) FROM ledger_entries WHERE ledger_entries.transaction_id = transactions.id "
    "AND kind = 'refund' AND outcome IN ('pending', 'unknown', 'approved')"
)
REFUNDS_APPROVED = (
    "SELECT COALESCE(SUM(amount), 0) FROM ledger_entries WHERE ledger_entries.transaction_id = transactions.id "
    "AND kind = 'refund' AND outcome = 'approved'"
)
VOID_APPROVED = (
    "SELECT 1 FROM ledger_entries WHERE ledger_entries.transaction_id = transactions.id "
    "AND kind = 'void' AND outcome = 'approved'"
)


def upgrade() -> None:
    with op.batch_alter_table("transactions") as batch_op:
        batch_op.add_column(sa.Column("refunded", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute(f"UPDATE transactions SET refunded = ({REFUNDS_HOLDING})")
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table) as batch_op:
            if table == "transactions":
                batch_op.alter_column("refunded", existing_type=sa.BigInteger(), server_default=None,
                                      existing_nullable=False)
                batch_op.drop_column("amount_refunded")
                batch_op.drop_column("voided")
            for name, condition in checks:
                batch_op.create_check_constraint(name, condition)


def downgrade() -> None:
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table) as batch_op:
            for name, _condition in reversed(checks):
                batch_op.drop_constraint(name, type_="check")
            if table == "transactions":
                batch_op.add_column(sa.Column("amount_refunded", sa.BigInteger(), nullable=False, server_default="0"))
                batch_op.add_column(sa.Column("voided", sa.Boolean(), nullable=False, server_default=sa.false()))
    # What the old code wrote: approved refunds only, and whether a void was approved.
    op.execute(f"UPDATE transactions SET amount_refunded = ({REFUNDS_APPROVED}), "
               f"voided = EXISTS ({VOID_APPROVED})")
    with op.batch_alter_table("transactions") as batch_op:
        batch_op.alter_column("amount_refunded", existing_type=sa.BigInteger(), server_default=None,
                              existing_nullable=False)
        batch_op.alter_column("voided", existing_type=sa.Boolean(), server_default=None, existing_nullable=False)
        batch_op.drop_column("refunded")
