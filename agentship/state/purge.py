"""Retention: what has outlived the TTL is deleted, and conversations are kept to a size."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from agentship.state.chains import anchor_children
from agentship.state.engine import transaction
from agentship.state.records import trim_history
from agentship.state.schema import (
    a2a_push_configs,
    a2a_tasks,
    agent_messages,
    agent_sessions,
    conversations,
    idempotency_keys,
    locks,
    openai_conversations,
    response_events,
    response_items,
    responses,
    run_states,
    usage,
    webhook_outbox,
)
from agentship.state.settings import StateSettings

_logger = logging.getLogger(__name__)


async def purge_expired(
    engine: AsyncEngine, settings: StateSettings, clock: Callable[[], float] = time.time
) -> int:
    """Delete expired responses (with their items and events), conversation handles, stale locks,
    expired conversations of the Conversations API (with their sessions) and SDK sessions
    untouched for the TTL. Returns how many rows went."""
    now = clock()
    expired = select(responses.c.id).where(responses.c.expires_at < now)
    expired_conversations = select(openai_conversations.c.key).where(openai_conversations.c.expires_at < now)
    cutoff = _sdk_cutoff(engine.dialect.name, settings.ttl_s)
    removed = 0
    async with transaction(engine) as conn:
        if engine.dialect.name == "postgresql":  # no child is saved onto them from here on
            await conn.execute(expired.order_by(responses.c.id).with_for_update())
        # a response that outlives its parent keeps its whole history (the parent expired first)
        await anchor_children(conn, expired, settings.max_items, live_after=now)
        for statement in (
            delete(response_events).where(response_events.c.response_id.in_(expired)),
            delete(response_items).where(response_items.c.response_id.in_(expired)),
            delete(responses).where(responses.c.expires_at < now),
            delete(conversations).where(conversations.c.expires_at < now),
            # a lease left with its turn's mark waits for the conversation's next turn to take the
            # interrupted turn back (or for the session itself to expire)
            delete(locks).where(
                locks.c.expires_at < now - 3600,
                locks.c.turn_mark.is_(None) | (locks.c.expires_at < now - settings.ttl_s),
            ),
            delete(run_states).where(run_states.c.expires_at < now),
            # a key still claimed stays until its claimant's lease is over too
            delete(idempotency_keys).where(
                idempotency_keys.c.expires_at < now,
                idempotency_keys.c.lease_until.is_(None) | (idempotency_keys.c.lease_until < now),
            ),
            delete(usage).where(usage.c.expires_at < now),
            # a notice still claimed stays until its dispatcher's lease is over too
            delete(webhook_outbox).where(
                webhook_outbox.c.expires_at < now,
                webhook_outbox.c.lease_until.is_(None) | (webhook_outbox.c.lease_until < now),
            ),
            # an expired conversation of the Conversations API goes with its session
            delete(agent_messages).where(agent_messages.c.session_id.in_(expired_conversations)),
            delete(agent_sessions).where(agent_sessions.c.session_id.in_(expired_conversations)),
            delete(openai_conversations).where(openai_conversations.c.expires_at < now),
            delete(agent_messages).where(
                agent_messages.c.session_id.in_(
                    select(agent_sessions.c.session_id).where(agent_sessions.c.updated_at < cutoff)
                )
            ),
            delete(agent_sessions).where(agent_sessions.c.updated_at < cutoff),
            delete(a2a_tasks).where(
                a2a_tasks.c.last_updated < _utc_cutoff(engine.dialect.name, settings.ttl_s)
            ),
            delete(a2a_push_configs).where(a2a_push_configs.c.task_id.notin_(select(a2a_tasks.c.id))),
        ):
            removed += (await conn.execute(statement)).rowcount or 0
    if removed:
        _logger.info("state store: purged %d expired rows", removed)
    return removed


def _sdk_cutoff(dialect: str, ttl_s: float) -> Any:
    """The SDK stamps rows with CURRENT_TIMESTAMP: compare on the database's own clock."""
    if dialect == "postgresql":
        return func.localtimestamp() - timedelta(seconds=ttl_s)
    return func.datetime("now", f"-{int(ttl_s)} seconds")


def _utc_cutoff(dialect: str, ttl_s: float) -> Any:
    """The a2a-sdk stamps tasks with naive UTC times: the database's UTC clock, ``ttl_s`` ago."""
    if dialect == "postgresql":
        return func.timezone("UTC", func.now()) - timedelta(seconds=ttl_s)
    return func.datetime("now", f"-{int(ttl_s)} seconds")


async def trim_session(engine: AsyncEngine, session_id: str, max_items: int) -> int:
    """Keep an SDK session to its newest ``max_items`` items at most, cut at a turn boundary."""
    where = agent_messages.c.session_id == session_id
    async with transaction(engine) as conn:
        count = (await conn.execute(select(func.count()).where(where))).scalar() or 0
        if count <= max_items:
            return 0
        rows = (
            await conn.execute(
                select(agent_messages.c.id, agent_messages.c.message_data)
                .where(where)
                .order_by(agent_messages.c.id)
            )
        ).all()
        kept = trim_history([json.loads(row.message_data) for row in rows], max_items)
        first_kept = rows[len(rows) - len(kept)].id
        done = await conn.execute(delete(agent_messages).where(where, agent_messages.c.id < first_kept))
    return done.rowcount or 0
