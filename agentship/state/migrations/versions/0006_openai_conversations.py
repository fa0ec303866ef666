"""The conversations of OpenAI's Conversations API (``/v1/conversations``).

``agentship_openai_conversations`` keeps what a conversation is beyond its items: its id, its
user, its metadata and its times. ``key`` is the conversation's SDK session
(``conversation_key(user_id, id)``), whose ``agent_messages`` rows are its items.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "agentship_openai_conversations",
        sa.Column("key", sa.String(600), primary_key=True),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_agentship_openai_conversations_expires_at", "agentship_openai_conversations", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_table("agentship_openai_conversations")
