"""A conversation's history kept once, in the chain of its responses.

``agentship_responses.parent_id`` names the stored response whose context a response's
``history`` continues; that response then holds only its own items. The foreign key refuses to
delete a parent before its children hold their whole history (deleting and purging write it
first). Responses stored before this revision have no parent: each holds its whole history.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with a REFERENCES clause in place (its default is NULL); alembic
        # would only do it by copying the table (batch mode), whose drop of the old table would
        # take every response's items and events with it, through their cascades.
        op.execute(
            "ALTER TABLE agentship_responses ADD COLUMN parent_id VARCHAR(64) "
            "REFERENCES agentship_responses (id)"
        )
    else:
        op.add_column(
            "agentship_responses",
            sa.Column("parent_id", sa.String(64), sa.ForeignKey("agentship_responses.id"), nullable=True),
        )
    op.create_index("ix_agentship_responses_parent_id", "agentship_responses", ["parent_id"])


def downgrade() -> None:
    op.drop_index("ix_agentship_responses_parent_id", table_name="agentship_responses")
    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot drop a column a foreign key uses;
        op.drop_column("agentship_responses", "parent_id")  # revision 0010 leaves it null there
