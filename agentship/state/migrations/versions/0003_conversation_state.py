"""A backend's conversation state as JSON (a server session id, or a history the server does not
keep), not only a server id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("agentship_conversations") as batch:
        batch.add_column(sa.Column("state", Json, nullable=True))
        batch.alter_column("server_id", existing_type=sa.String(255), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("agentship_conversations") as batch:
        batch.alter_column("server_id", existing_type=sa.String(255), nullable=False)
        batch.drop_column("state")
