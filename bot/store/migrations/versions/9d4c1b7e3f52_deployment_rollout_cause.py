"""deployments.rollout_cause: the stuck cause of a rollout GitHub and the dossier last heard of

Revision ID: 9d4c1b7e3f52
Revises: 7b2e4d6f8a10
"""

import sqlalchemy as sa
from alembic import op

revision = "9d4c1b7e3f52"
down_revision = "7b2e4d6f8a10"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for every existing row: nothing was told of a cause before, and rollouts under way at the upgrade
    # tell their current cause (if any) once.
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rollout_cause", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("rollout_cause")
