"""Paused runs: an Agents SDK RunState waiting for a tool approval or a client's tool output.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "agentship_run_states",
        sa.Column("key", sa.String(600), primary_key=True),
        sa.Column("state", Json, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_agentship_run_states_expires_at", "agentship_run_states", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_agentship_run_states_expires_at", table_name="agentship_run_states")
    op.drop_table("agentship_run_states")
