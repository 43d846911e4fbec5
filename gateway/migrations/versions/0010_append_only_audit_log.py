"""the audit log is append-only for everyone who connects: DELETE and TRUNCATE are refused, as UPDATE was

Revision ID: 0010
Revises: 0009

0005 refused UPDATE on console_audit; a DELETE or a TRUNCATE by the gateway's own user went through.
On PostgreSQL one row trigger now refuses UPDATE and DELETE and a statement trigger refuses TRUNCATE
(the function is 0005's); on SQLite, which has no TRUNCATE, a second trigger refuses DELETE. Only
the table's owner can switch them off (docs/security.md: the runtime role, and how retention works).
The downgrade puts 0005's UPDATE trigger back alone.
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

REFUSE = "RAISE(ABORT, 'the audit log is append-only')"


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgres():
        op.execute("DROP TRIGGER console_audit_no_update ON console_audit")
        op.execute("CREATE TRIGGER console_audit_append_only BEFORE UPDATE OR DELETE ON console_audit "
                   "FOR EACH ROW EXECUTE FUNCTION console_audit_append_only()")
        op.execute("CREATE TRIGGER console_audit_no_truncate BEFORE TRUNCATE ON console_audit "
                   "FOR EACH STATEMENT EXECUTE FUNCTION console_audit_append_only()")
    else:
        op.execute(f"CREATE TRIGGER console_audit_no_delete BEFORE DELETE ON console_audit BEGIN SELECT {REFUSE}; END")


def downgrade() -> None:
    if _postgres():
        op.execute("DROP TRIGGER console_audit_no_truncate ON console_audit")
        op.execute("DROP TRIGGER console_audit_append_only ON console_audit")
        op.execute("CREATE TRIGGER console_audit_no_update BEFORE UPDATE ON console_audit "
                   "FOR EACH ROW EXECUTE FUNCTION console_audit_append_only()")
    else:
        op.execute("DROP TRIGGER console_audit_no_delete")
