"""The state store for one event loop: an engine on it, and the parts built on that engine."""

from __future__ import annotations

import logging
import os
import socket
from uuid import uuid4

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from agentship.errors import StateError
from agentship.state.conversations import ConversationMap
from agentship.state.engine import create_engine
from agentship.state.idempotency import IdempotencyKeys
from agentship.state.locks import LeaseLocks
from agentship.state.migrate import ensure_schema
from agentship.state.openai_conversations import OpenAIConversations
from agentship.state.outbox import Outbox
from agentship.state.purge import purge_expired, trim_session
from agentship.state.responses import RunStore
from agentship.state.runstates import PausedRuns
from agentship.state.settings import StateSettings
from agentship.state.usage import UsageCounters

_logger = logging.getLogger(__name__)

TRIM_FAILURES = Counter(
    "agentship_state_trim_failures",
    "Conversation trims that failed after their turn was kept (the turn stands; the next turn trims).",
)


def replica_id() -> str:
    """This process's name as a lease owner: host, pid and a random part."""
    return f"{socket.gethostname()[:32]}-{os.getpid()}-{uuid4().hex[:8]}"


class StateStore:
    def __init__(self, settings: StateSettings, engine: AsyncEngine, owner: str) -> None:
        self.settings = settings
        self.engine = engine
        self.owner = owner
        self.outbox = Outbox(engine, owner, settings.ttl_s)
        """Webhooks and push notifications to deliver."""
        self.responses = RunStore(engine, settings, self.outbox)
        self.locks = LeaseLocks(engine, owner, lease_s=settings.lease_s)
        self.paused = PausedRuns(engine, settings.ttl_s)
        self.openai_conversations = OpenAIConversations(engine, self.locks, settings)
        """The Conversations API's conversations (each over the SDK session of its turns)."""
        self.idempotency = IdempotencyKeys(engine, owner, settings.idempotency_ttl_s, settings.lease_s)
        """Requests' ``Idempotency-Key`` s and their answers."""
        self.usage = UsageCounters(engine)

    @classmethod
    async def open(
        cls, settings: StateSettings, owner: str | None = None, migrate: bool = True
    ) -> StateStore:
        """Connect (on the running loop) and bring the schema up to date."""
        engine = create_engine(settings)
        try:
            if migrate:
                await ensure_schema(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(settings, engine, owner or replica_id())

    def conversations(self, backend: str) -> ConversationMap:
        return ConversationMap(self.engine, backend, self.settings.ttl_s)

    async def purge(self) -> int:
        return await purge_expired(self.engine, self.settings)

    async def trim_session(self, session_id: str) -> int:
        """Keep an SDK session to the item limit, best effort: a failure is logged and counted
        (``agentship_state_trim_failures``), never raised; the session's next turn trims again."""
        try:
            return await trim_session(self.engine, session_id, self.settings.max_items)
        except Exception as exc:  # logged and counted: the kept turn must stand
            TRIM_FAILURES.inc()
            _logger.warning(
                "state store: could not trim a conversation after its turn (kept): %s",
                type(exc).__name__,
                exc_info=not isinstance(exc, StateError),  # the store's own failures are logged there
            )
            return 0

    async def aclose(self) -> None:
        await self.locks.interrupts.aclose()
        await self.engine.dispose()
