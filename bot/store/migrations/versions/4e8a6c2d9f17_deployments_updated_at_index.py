"""deployments.updated_at index: the dashboard's matrix reads only the rows changed since its last look

Revision ID: 4e8a6c2d9f17
Revises: 9d4c1b7e3f52
"""

from alembic import op

revision = "4e8a6c2d9f17"
down_revision = "9d4c1b7e3f52"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployments_updated_at"), ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployments_updated_at"))
