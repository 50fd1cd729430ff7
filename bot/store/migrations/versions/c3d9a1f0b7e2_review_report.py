"""reviews keep their full comparison (report)

Revision ID: c3d9a1f0b7e2
Revises: c3f1a9d2e7b4
"""

import sqlalchemy as sa
from alembic import op

revision = "c3d9a1f0b7e2"
down_revision = "c3f1a9d2e7b4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_column("report")
