"""jobs.claimed_at: when a worker first claimed the job (queue wait = claimed_at - created_at)

Revision ID: 9d4c2b7e1f05
Revises: 9d3c5a7e1b22
"""

import sqlalchemy as sa
from alembic import op

revision = "9d4c2b7e1f05"
down_revision = "9d3c5a7e1b22"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("claimed_at")
