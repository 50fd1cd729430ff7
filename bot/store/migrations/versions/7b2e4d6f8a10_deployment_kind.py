"""deployments.kind: what wrote each row (deploy, promote, rollback, unpin)

Revision ID: 7b2e4d6f8a10
Revises: 5e1f7a9c2d43
"""

import sqlalchemy as sa
from alembic import op

revision = "7b2e4d6f8a10"
down_revision = "5e1f7a9c2d43"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="deploy", nullable=False))
    # Rows from before the column: the guard's rollback rows are recognisable by their detail; the rest
    # were deploys (merges, `/modelship deploy`) or promotions, which earlier rows cannot tell apart.
    op.execute("UPDATE deployments SET kind = 'rollback' WHERE detail LIKE 'rollback from %'")


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("kind")
