"""Double-texting across replicas.

``agentship_locks.interrupt``: set by a new message whose double-texting policy stops the
conversation's running turn (``interrupt`` or ``rollback``); the replica holding the lease sees it
and stops the turn. Cleared when another holder takes a lease that ran out.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agentship_locks") as batch:
        batch.add_column(sa.Column("interrupt", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agentship_locks") as batch:
        batch.drop_column("interrupt")
