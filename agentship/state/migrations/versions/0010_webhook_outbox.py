"""Webhooks and A2A push notifications, delivered at least once through an outbox.

* ``agentship_webhook_outbox``: one row per notification and destination, written in the
  transaction that ends what it announces; a replica's dispatcher claims it by lease, and marks
  it delivered, or due again after a backoff, or given up.
* ``agentship_a2a_push_configs`` has the columns of the a2a-sdk's push-notification config model
  (``a2a.server.models``), which its ``DatabasePushNotificationConfigStore`` reads and writes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agentship_webhook_outbox",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("destination", sa.String(255), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("payload", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_at", sa.Float, nullable=False),
        sa.Column("owner", sa.String(255)),
        sa.Column("lease_until", sa.Float),
        sa.Column("last_status", sa.Integer),
        sa.Column("delivered_at", sa.Float),
        sa.Column("given_up_at", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_agentship_webhook_outbox_due",
        "agentship_webhook_outbox",
        ["delivered_at", "given_up_at", "next_at"],
    )
    op.create_index("ix_agentship_webhook_outbox_subject", "agentship_webhook_outbox", ["subject"])
    op.create_index("ix_agentship_webhook_outbox_expires_at", "agentship_webhook_outbox", ["expires_at"])
    op.create_table(
        "agentship_a2a_push_configs",
        sa.Column("task_id", sa.String(36), primary_key=True),
        sa.Column("config_id", sa.String(255), primary_key=True),
        sa.Column("config_data", sa.LargeBinary, nullable=False),
        sa.Column("owner", sa.String(255)),
        sa.Column("protocol_version", sa.String(16)),
    )
    op.create_index("ix_agentship_a2a_push_configs_owner", "agentship_a2a_push_configs", ["owner"])


def downgrade() -> None:
    op.drop_table("agentship_a2a_push_configs")
    op.drop_table("agentship_webhook_outbox")
