"""Per-key limits and token budgets.

``agentship_usage`` counts, per subject (a key's or a user's identity) and period (a UTC minute,
``m<n>``, or a UTC day, ``d<n>``), the requests admitted and the tokens spent; rows expire once
their period is over.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agentship_usage",
        sa.Column("subject", sa.String(255), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_agentship_usage_expires_at", "agentship_usage", ["expires_at"])


def downgrade() -> None:
    op.drop_table("agentship_usage")
