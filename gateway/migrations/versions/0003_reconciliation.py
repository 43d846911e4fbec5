"""reconciliation: needs-attention reasons, per-item backoff, post-order takeover, outbox fencing

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payment_sessions", sa.Column("attention", sa.Text(), nullable=False, server_default=""))
    op.add_column("payment_sessions", sa.Column("attention_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("payment_sessions", sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("payment_sessions", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("ledger_entries", sa.Column("attention", sa.Text(), nullable=False, server_default=""))
    op.add_column("post_order_requests", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE post_order_requests SET claimed_at = created_at")
    op.add_column("notifications", sa.Column("lease", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("notifications", "lease")
    op.drop_column("post_order_requests", "claimed_at")
    op.drop_column("ledger_entries", "attention")
    op.drop_column("payment_sessions", "retry_at")
    op.drop_column("payment_sessions", "failures")
    op.drop_column("payment_sessions", "attention_at")
    op.drop_column("payment_sessions", "attention")
