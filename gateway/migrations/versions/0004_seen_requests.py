"""seen requests: every randomkey is accepted once, whatever endpoint or body

Revision ID: 0004
Revises: 0003

Request fingerprints become keyed (HMAC) from this revision on; the keys already used are copied
in so that none of them can be used again. An exact retry of a request made before the upgrade
is refused as a reuse (its old fingerprint was unkeyed); the store starts a new checkout instead.
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seen_requests",
        sa.Column("randomkey", sa.String(length=128), nullable=False),
        sa.Column("endpoint", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("randomkey"),
    )
    with op.batch_alter_table("payment_sessions") as batch_op:
        batch_op.create_index("ix_payment_sessions_randomkey", ["randomkey"], unique=False)
    op.execute(
        "INSERT INTO seen_requests (randomkey, endpoint, digest, created_at) "
        "SELECT randomkey, 'checkout', 'legacy', MIN(created_at) FROM payment_sessions GROUP BY randomkey"
    )
    op.execute(
        "INSERT INTO seen_requests (randomkey, endpoint, digest, created_at) "
        "SELECT randomkey, 'post-order', 'legacy', MIN(created_at) FROM post_order_requests "
        "WHERE randomkey NOT IN (SELECT randomkey FROM seen_requests) GROUP BY randomkey"
    )


def downgrade() -> None:
    with op.batch_alter_table("payment_sessions") as batch_op:
        batch_op.drop_index("ix_payment_sessions_randomkey")
    op.drop_table("seen_requests")
