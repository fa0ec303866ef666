"""Idempotency keys (``Idempotency-Key`` on ``POST /responses`` and ``/invocations``).

``agentship_idempotency_keys`` keeps, per user and key, the fingerprint of the request the key was
first used with, its claimant's lease while it runs (``owner``, ``lease_until``) and, once it
ended, its answer.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "agentship_idempotency_keys",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64)),
        sa.Column("lease_until", sa.Float),
        sa.Column("answer", Json),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_agentship_idempotency_keys_expires_at", "agentship_idempotency_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_table("agentship_idempotency_keys")
