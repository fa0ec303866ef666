"""The initial state store: responses, their items and events, locks, conversations, SDK sessions.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "agentship_responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("conversation_id", sa.String(255)),
        sa.Column("previous_response_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("background", sa.Boolean, nullable=False),
        sa.Column("request", Json, nullable=False),
        sa.Column("input", Json, nullable=False),
        sa.Column("history", Json, nullable=False),
        sa.Column("output", Json, nullable=False),
        sa.Column("response", Json),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("owner", sa.String(64)),
        sa.Column("lease_until", sa.Float),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
    )
    op.create_index("ix_agentship_responses_expires_at", "agentship_responses", ["expires_at"])
    op.create_index("ix_agentship_responses_runs", "agentship_responses", ["status", "lease_until"])
    op.create_table(
        "agentship_response_items",
        sa.Column(
            "response_id",
            sa.String(64),
            sa.ForeignKey("agentship_responses.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("item", Json, nullable=False),
    )
    op.create_index("ix_agentship_response_items_item", "agentship_response_items", ["user_id", "item_id"])
    op.create_table(
        "agentship_response_events",
        sa.Column(
            "response_id",
            sa.String(64),
            sa.ForeignKey("agentship_responses.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("event", Json, nullable=False),
    )
    op.create_table(
        "agentship_locks",
        sa.Column("key", sa.String(600), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_table(
        "agentship_conversations",
        sa.Column("key", sa.String(600), primary_key=True),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("server_id", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_agentship_conversations_expires_at", "agentship_conversations", ["expires_at"])
    now = sa.text("CURRENT_TIMESTAMP")
    op.create_table(
        "agent_sessions",
        sa.Column("session_id", sa.String, primary_key=True),
        sa.Column("created_at", sa.TIMESTAMP(timezone=False), server_default=now, nullable=False),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=False), server_default=now, nullable=False),
    )
    op.create_table(
        "agent_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "session_id",
            sa.String,
            sa.ForeignKey("agent_sessions.session_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("message_data", sa.Text, nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(timezone=False), server_default=now, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("idx_agent_messages_session_time", "agent_messages", ["session_id", "created_at"])


def downgrade() -> None:
    for index, table in (
        ("idx_agent_messages_session_time", "agent_messages"),
        ("ix_agentship_conversations_expires_at", "agentship_conversations"),
        ("ix_agentship_response_items_item", "agentship_response_items"),
        ("ix_agentship_responses_runs", "agentship_responses"),
        ("ix_agentship_responses_expires_at", "agentship_responses"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "agent_messages",
        "agent_sessions",
        "agentship_conversations",
        "agentship_locks",
        "agentship_response_events",
        "agentship_response_items",
        "agentship_responses",
    ):
        op.drop_table(table)
