"""Turns that are all or nothing, and approvals answered once.

* ``agentship_locks.turn_mark``: while a conversation's turn runs, the id of the session's last
  item before it. A turn that ends cleanly clears it; one that dies half-way (SIGKILL, the
  store unreachable) leaves it, and the next holder of the lease deletes the items after it.
* ``agentship_run_states.run_id``: shared by every call a paused run waits on, so that answering
  any of them takes the whole run at once (``DELETE … RETURNING`` by run id), and only once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agentship_locks") as batch:
        batch.add_column(sa.Column("turn_mark", sa.Integer, nullable=True))
    with op.batch_alter_table("agentship_run_states") as batch:
        batch.add_column(sa.Column("run_id", sa.String(64), nullable=True))
    op.create_index("ix_agentship_run_states_run_id", "agentship_run_states", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_agentship_run_states_run_id", table_name="agentship_run_states")
    with op.batch_alter_table("agentship_run_states") as batch:
        batch.drop_column("run_id")
    with op.batch_alter_table("agentship_locks") as batch:
        batch.drop_column("turn_mark")
