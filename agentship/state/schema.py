"""The state store's tables. The migrations in ``migrations/versions`` create exactly these.

Every record is scoped by the user it belongs to (``user_id``, ``""`` for anonymous), and
expires (``expires_at``, epoch seconds) a TTL after its last use.

* ``agentship_responses``: stored ``/responses`` answers, their input and the history the agent
  saw, kept once per chain: a response continuing another (``parent_id``) holds only its own
  items, and a parent is never deleted before its children hold their whole history (the
  foreign key refuses it); background runs also keep their lease (``owner``, ``lease_until``, ``attempt``, and
  ``released``: the attempts given up at a shutdown).
* ``agentship_response_items``: output items by id, so ``item_reference`` inputs resolve.
* ``agentship_response_events``: a background run's stream events, in order, for replay.
* ``agentship_locks``: leases that serialise the turns of one conversation across replicas, and
  the mark of the turn running under one (its session's last item id before it), cleared when
  the turn ends cleanly.
* ``agentship_conversations``: a backend's server-side handle for a conversation (a Llama
  Stack session or conversation id).
* ``agentship_openai_conversations``: the conversations of OpenAI's Conversations API
  (``/v1/conversations``): id, user, metadata, times. A conversation's items are the rows of
  its SDK session, ``agent_messages`` under ``key`` (:func:`~agentship.state.conversation_key`).
* ``agentship_run_states``: paused runs (an Agents SDK ``RunState``), by the calls they wait on;
  the rows of one run share its ``run_id`` (null for runs paused before revision 0004).
* ``agentship_idempotency_keys``: a user's ``Idempotency-Key`` s, the fingerprint of the request
  each was first used with, its claimant's lease while it runs, and the answer it got.
* ``agentship_webhook_outbox``: notifications to send (a background response's end, an A2A
  task's status), one row per event and destination, written with what they announce, and
  claimed by one replica's dispatcher at a time (``owner``, ``lease_until``) until delivered or
  given up.
* ``agentship_a2a_push_configs``: A2A push-notification configurations, column for column as the
  a2a-sdk's ``DatabasePushNotificationConfigStore`` defines them (the SDK reads and writes them).
* ``agent_sessions`` / ``agent_messages``: the OpenAI Agents SDK's ``SQLAlchemySession``
  tables, column for column as the SDK defines them (the SDK reads and writes them).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    TIMESTAMP,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")

responses = Table(
    "agentship_responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(255), nullable=False),
    Column("conversation_id", String(255)),
    Column("previous_response_id", String(64)),
    Column("status", String(16), nullable=False),
    Column("background", Boolean, nullable=False),
    Column("request", Json, nullable=False),
    Column("input", Json, nullable=False),
    Column("history", Json, nullable=False),
    Column("output", Json, nullable=False),
    Column("response", Json),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("owner", String(64)),
    Column("lease_until", Float),
    Column("attempt", Integer, nullable=False),
    Column("released", Integer, nullable=False, server_default="0"),
    Column("cancel_requested", Boolean, nullable=False),
    Column("parent_id", String(64), ForeignKey("agentship_responses.id")),
    Index("ix_agentship_responses_expires_at", "expires_at"),
    Index("ix_agentship_responses_parent_id", "parent_id"),
    Index("ix_agentship_responses_runs", "status", "lease_until"),
)

response_items = Table(
    "agentship_response_items",
    metadata,
    Column("response_id", String(64), ForeignKey(responses.c.id, ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("item_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("item", Json, nullable=False),
    Index("ix_agentship_response_items_item", "user_id", "item_id"),
)

response_events = Table(
    "agentship_response_events",
    metadata,
    Column("response_id", String(64), ForeignKey(responses.c.id, ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("event", Json, nullable=False),
)

locks = Table(
    "agentship_locks",
    metadata,
    Column("key", String(600), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("turn_mark", Integer),
    Column("interrupt", String(16)),
)

conversations = Table(
    "agentship_conversations",
    metadata,
    Column("key", String(600), primary_key=True),
    Column("backend", String(64), nullable=False),
    Column("server_id", String(255)),
    Column("state", Json),
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_agentship_conversations_expires_at", "expires_at"),
)

openai_conversations = Table(
    "agentship_openai_conversations",
    metadata,
    Column("key", String(600), primary_key=True),
    Column("id", String(64), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("metadata", Json, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_agentship_openai_conversations_expires_at", "expires_at"),
)

run_states = Table(
    "agentship_run_states",
    metadata,
    Column("key", String(600), primary_key=True),
    Column("state", Json, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("run_id", String(64)),
    Index("ix_agentship_run_states_expires_at", "expires_at"),
    Index("ix_agentship_run_states_run_id", "run_id"),
)

idempotency_keys = Table(
    "agentship_idempotency_keys",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("owner", String(64)),
    Column("lease_until", Float),
    Column("answer", Json),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_agentship_idempotency_keys_expires_at", "expires_at"),
)

usage = Table(
    "agentship_usage",
    metadata,
    Column("subject", String(255), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("requests", Integer, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_agentship_usage_expires_at", "expires_at"),
)

agent_sessions = Table(
    "agent_sessions",
    metadata,
    Column("session_id", String, primary_key=True),
    Column(
        "created_at", TIMESTAMP(timezone=False), server_default=sql_text("CURRENT_TIMESTAMP"), nullable=False
    ),
    Column(
        "updated_at", TIMESTAMP(timezone=False), server_default=sql_text("CURRENT_TIMESTAMP"), nullable=False
    ),
)

agent_messages = Table(
    "agent_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String, ForeignKey("agent_sessions.session_id", ondelete="CASCADE"), nullable=False),
    Column("message_data", Text, nullable=False),
    Column(
        "created_at", TIMESTAMP(timezone=False), server_default=sql_text("CURRENT_TIMESTAMP"), nullable=False
    ),
    Index("idx_agent_messages_session_time", "session_id", "created_at"),
    sqlite_autoincrement=True,
)


a2a_tasks = Table(
    "agentship_a2a_tasks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("context_id", String(36), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("owner", String(255)),
    Column("last_updated", DateTime),
    Column("status", JSON, nullable=False),
    Column("artifacts", JSON),
    Column("history", JSON),
    Column("protocol_version", String(16)),
    Column("metadata", JSON),
    Index("ix_agentship_a2a_tasks_id", "id"),
    Index("idx_agentship_a2a_tasks_owner_last_updated", "owner", "last_updated"),
)

webhook_outbox = Table(
    "agentship_webhook_outbox",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("event_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("destination", String(255), nullable=False),
    Column("url", Text, nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("payload", Json, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_at", Float, nullable=False),
    Column("owner", String(255)),
    Column("lease_until", Float),
    Column("last_status", Integer),
    Column("delivered_at", Float),
    Column("given_up_at", Float),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_agentship_webhook_outbox_due", "delivered_at", "given_up_at", "next_at"),
    Index("ix_agentship_webhook_outbox_subject", "subject"),
    Index("ix_agentship_webhook_outbox_expires_at", "expires_at"),
)

a2a_push_configs = Table(
    "agentship_a2a_push_configs",
    metadata,
    Column("task_id", String(36), primary_key=True),
    Column("config_id", String(255), primary_key=True),
    Column("config_data", LargeBinary, nullable=False),
    Column("owner", String(255)),
    Column("protocol_version", String(16)),
    Index("ix_agentship_a2a_push_configs_owner", "owner"),
)
