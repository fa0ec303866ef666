"""A bounded map from conversation ids to backend state (LRU, with an idle TTL)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Conversation:
    """What the wrapper keeps for one ``conversation_id``."""

    server_id: str | None = None  # a Llama Stack session or conversation id
    history: list[dict[str, Any]] = field(default_factory=list)  # chat mode keeps it client-side
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = 0.0


class ConversationCache:
    """At most ``max_items`` conversations; idle ones expire after ``ttl_s``."""

    def __init__(self, max_items: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._items: OrderedDict[str, Conversation] = OrderedDict()
        self._max = max_items
        self._ttl = ttl_s
        self._clock = clock

    def __len__(self) -> int:
        return len(self._items)

    def get_or_create(self, key: str) -> tuple[Conversation, list[Conversation]]:
        """The conversation for ``key`` (new if absent or expired), and the ones evicted."""
        now = self._clock()
        evicted = [self._items.pop(k) for k, c in list(self._items.items()) if now - c.last_used > self._ttl]
        conversation = self._items.pop(key, None)
        if conversation is None:
            conversation = Conversation()
        conversation.last_used = now
        self._items[key] = conversation
        while len(self._items) > self._max:
            evicted.append(self._items.popitem(last=False)[1])
        return conversation, evicted

    def drain(self) -> list[Conversation]:
        items = list(self._items.values())
        self._items.clear()
        return items
