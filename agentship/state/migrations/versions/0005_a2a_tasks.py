"""A2A tasks in the store, so any replica answers ``GetTask``, ``CancelTask`` and ``ListTasks``;
and background runs count the attempts given up at a shutdown apart from those that died.

* ``agentship_a2a_tasks`` has the columns of the a2a-sdk's own task model (``a2a.server.models``),
  which its ``DatabaseTaskStore`` reads and writes; ``owner`` is the task's user.
* ``agentship_responses.released``: how many of a run's attempts a replica gave up at shutdown
  (the cap on attempts is on the others: replicas that died running it).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agentship_responses") as batch:
        batch.add_column(sa.Column("released", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "agentship_a2a_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("context_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("last_updated", sa.DateTime, nullable=True),
        sa.Column("status", sa.JSON, nullable=False),
        sa.Column("artifacts", sa.JSON, nullable=True),
        sa.Column("history", sa.JSON, nullable=True),
        sa.Column("protocol_version", sa.String(16), nullable=True),
        sa.Column("metadata", sa.JSON, nullable=True),
    )
    op.create_index("ix_agentship_a2a_tasks_id", "agentship_a2a_tasks", ["id"])
    op.create_index(
        "idx_agentship_a2a_tasks_owner_last_updated", "agentship_a2a_tasks", ["owner", "last_updated"]
    )


def downgrade() -> None:
    op.drop_table("agentship_a2a_tasks")
    with op.batch_alter_table("agentship_responses") as batch:
        batch.drop_column("released")
