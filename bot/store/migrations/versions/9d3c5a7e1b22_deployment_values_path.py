"""deployments.values_path: the values file each row's deploy wrote (deploy.path_template at the time)

Revision ID: 9d3c5a7e1b22
Revises: 4e8a6c2d9f17
"""

import sqlalchemy as sa
from alembic import op

revision = "9d3c5a7e1b22"
down_revision = "4e8a6c2d9f17"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows from before the column stay NULL: the template they were written under is not stored anywhere
    # (a guess from today's .modelship.yml could name another file), so the dashboard says it is not known.
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("values_path", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("values_path")
