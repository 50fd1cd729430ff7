"""notification outbox: notify_events

Revision ID: c3f1a9d2e7b4
Revises: 5c0d7e1f9a3b
"""

import sqlalchemy as sa
from alembic import op

revision = "c3f1a9d2e7b4"
down_revision = "5c0d7e1f9a3b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("delivered", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_events")),
        sa.UniqueConstraint("key", name="uq_notify_events_key"),
    )


def downgrade() -> None:
    op.drop_table("notify_events")
