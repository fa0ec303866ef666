"""What the wrapper keeps per ``conversation_id``, behind a small async interface.

:class:`ConversationMap` is the interface the backend uses; :class:`InMemoryConversationMap`
is the per-process implementation (bounded LRU with an idle TTL). A persistent store (SQL, for
restarts and replicas) implements the same four methods.

The rules every implementation keeps:

* a turn holds ``lock(key)`` for its whole run, so one conversation runs one turn at a time;
* a conversation whose lock is held, or awaited, is never evicted (its turn still runs);
* state is written with ``set`` only after a turn has succeeded, so a failed first turn leaves
  nothing behind and the next turn starts afresh with the client's full history.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ConversationState:
    """A conversation's server-side handle, or its history where the server keeps none."""

    server_id: str | None = None  # a Llama Stack session id, or a server conversation id
    history: list[dict[str, Any]] = field(default_factory=list)  # chat mode: the run's input list


class ConversationMap(Protocol):
    """conversation_id → :class:`ConversationState`."""

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold ``key`` for one turn: other turns of it wait, and it is not evicted meanwhile."""
        ...

    async def get(self, key: str) -> ConversationState | None: ...

    async def set(self, key: str, state: ConversationState) -> None: ...

    async def forget(self, key: str) -> None: ...

    async def aclose(self) -> None: ...


Release = Callable[[ConversationState], Awaitable[None]]
"""Called with each state the map drops (evicted, expired or closed), e.g. to delete a session."""


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    state: ConversationState | None = None
    holders: int = 0  # turns running or waiting
    last_used: float = 0.0


class InMemoryConversationMap:
    """At most ``max_items`` idle conversations; idle ones expire after ``ttl_s``."""

    def __init__(
        self, max_items: int, ttl_s: float, release: Release, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._max = max_items
        self._ttl = ttl_s
        self._release = release
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def _locked(self, key: str) -> AsyncIterator[None]:
        entry = self._entries.pop(key, None) or _Entry()
        self._entries[key] = entry  # most recently used
        entry.holders += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.holders -= 1
            entry.last_used = self._clock()
            if self._entries.get(key) is entry:
                self._entries.move_to_end(key)  # used last, so evicted last
            await self._evict()

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        return self._locked(key)

    async def get(self, key: str) -> ConversationState | None:
        entry = self._entries.get(key)
        return entry.state if entry else None

    async def set(self, key: str, state: ConversationState) -> None:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(last_used=self._clock())
        entry.state = state

    async def forget(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.state is not None:
            state, entry.state = entry.state, None
            await self._release(state)

    async def _evict(self) -> None:
        """Drop expired entries, then the least recently used, skipping any that a turn holds."""
        now = self._clock()
        idle = [k for k, e in self._entries.items() if e.holders == 0]
        dropped = [k for k in idle if now - self._entries[k].last_used > self._ttl]
        excess = len(self._entries) - len(dropped) - self._max
        dropped += [k for k in idle if k not in dropped][: max(0, excess)]
        for key in dropped:
            state = self._entries.pop(key).state
            if state is not None:
                await self._release(state)

    async def aclose(self) -> None:
        entries = list(self._entries.values())
        self._entries.clear()
        for entry in entries:
            if entry.state is not None:
                await self._release(entry.state)
