"""a charge keeps the processor's AVS and CVV results

Revision ID: 0009
Revises: 0008

``charges.avs_result`` and ``charges.cvv_result``: the processor's address-verification and
security-code codes for the sale (Authorize.Net's avsResultCode and cvvResultCode, one letter),
at most 4 characters (a named CHECK, the same refusal on both engines); existing charges get "" (unknown).
The downgrade drops them.
"""
from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = ("avs_result", "cvv_result")
CODE_MAX = 4  # copied, not imported: a migration is frozen


def upgrade() -> None:
    with op.batch_alter_table("charges") as batch_op:
        for column in COLUMNS:
            batch_op.add_column(sa.Column(column, sa.String(), nullable=False, server_default=""))
            batch_op.create_check_constraint(f"ck_charges_{column}", f"length({column}) <= {CODE_MAX}")


def downgrade() -> None:
    with op.batch_alter_table("charges") as batch_op:
        for column in reversed(COLUMNS):
            batch_op.drop_constraint(f"ck_charges_{column}", type_="check")
            batch_op.drop_column(column)
