"""deploy rollout: live tracking columns on deployments

Revision ID: 5c0d7e1f9a3b
Revises: 2bf83d67eb6e
"""

import sqlalchemy as sa
from alembic import op

revision = "5c0d7e1f9a3b"
down_revision = "2bf83d67eb6e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before live tracking keep rollout NULL: an upgrade never fails the deploys of the past.
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rollout", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("rollout_told", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("rollout_detail", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("previous_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("live_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_deployments_rollout"), ["rollout"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployments_rollout"))
        batch_op.drop_column("live_at")
        batch_op.drop_column("committed_at")
        batch_op.drop_column("previous_sha256")
        batch_op.drop_column("rollout_detail")
        batch_op.drop_column("rollout_told")
        batch_op.drop_column("rollout")
