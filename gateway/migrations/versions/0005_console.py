"""operator console: accounts, sessions, failed logins, the append-only audit log, payment events

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NOW = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("totp_sealed", sa.Text(), nullable=True),
        sa.Column("totp_last_step", sa.Integer(), nullable=False),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("notice", sa.Text(), nullable=False),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("last_seen_at", NOW, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["console_accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_console_sessions_account_id", "console_sessions", ["account_id"])
    op.create_table(
        "console_login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", NOW, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("username", "address", "occurred_at"):
        op.create_index(f"ix_console_login_failures_{column}", "console_login_failures", [column])
    op.create_table(
        "console_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", NOW, nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=255), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_console_audit_at", "console_audit", ["at"])
    op.create_index("ix_console_audit_action", "console_audit", ["action"])
    op.create_table(
        "payment_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("at", NOW, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["payment_sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payment_events_session_id", "payment_events", ["session_id"])
    _forbid_audit_updates()


def _forbid_audit_updates() -> None:
    """The audit log is append-only in the database itself, whatever code talks to it."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION console_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER console_audit_no_update BEFORE UPDATE ON console_audit "
            "FOR EACH ROW EXECUTE FUNCTION console_audit_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER console_audit_no_update BEFORE UPDATE ON console_audit "
            "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS console_audit_no_update" + (" ON console_audit" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS console_audit_append_only()")
    for table in ("payment_events", "console_audit", "console_login_failures", "console_sessions", "console_accounts"):
        op.drop_table(table)
