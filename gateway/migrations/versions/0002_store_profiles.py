"""store profiles: how each store is shown to its shoppers

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_profiles",
        sa.Column("store_key", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=120), nullable=False),
        sa.Column("logo_url", sa.Text(), nullable=False),
        sa.Column("support_email", sa.String(length=254), nullable=False),
        sa.Column("support_phone", sa.String(length=40), nullable=False),
        sa.Column("support_url", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("store_key"),
    )


def downgrade() -> None:
    op.drop_table("store_profiles")
