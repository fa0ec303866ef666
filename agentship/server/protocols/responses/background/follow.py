"""Following a background run: its events after a sequence number, then live until it ends.

On the replica that runs it, a :class:`LiveEvents` window keeps the run's latest events in
memory, and followers wait on it. Events older than the window (or a run on another replica)
are read from the store's event log, which holds every event from ``response.created`` on,
whichever replica made it: a follower that joins a run taken over still gets the whole stream.
The window only lets go of events already written, so memory stays bounded without a gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from agentship.server.protocols.responses.events import TERMINAL_EVENTS
from agentship.state import StateStore
from agentship.state.records import TERMINAL

WINDOW = 512
"""Events of a running run kept in memory for its followers (older ones are read from the store)."""
PAGE = 500
"""Events read from the store at a time."""
POLL_S = (0.1, 1.0)
"""A follower of a run on another replica polls the store this often: from the first, backing
off to the second while nothing happens."""


@dataclass
class LiveEvents:
    """A running run's latest events, by sequence number; followers wait on :attr:`changed`."""

    first_seq: int
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    ended: bool = False

    async def add(self, events: list[dict[str, Any]], durable_seq: int) -> None:
        """Add ``events``; let go of the oldest beyond the window, if they are written."""
        async with self.changed:
            self.events += events
            excess = min(len(self.events) - WINDOW, durable_seq - self.first_seq)
            if excess > 0:
                del self.events[:excess]
                self.first_seq += excess
            self.changed.notify_all()

    async def end(self) -> None:
        async with self.changed:
            self.ended = True
            self.changed.notify_all()


async def follow(
    store: StateStore, live: Callable[[], LiveEvents | None], response_id: str, after: int
) -> AsyncIterator[dict[str, Any]]:
    """The run's events with a sequence number above ``after``, until its terminal event."""
    last, pause = after, POLL_S[0]
    while True:
        window = live()
        fresh: list[dict[str, Any]] = []
        if window is not None and not window.ended and last + 1 >= window.first_seq:
            async with window.changed:
                fresh = [e for e in window.events if e["sequence_number"] > last]
                if not fresh and not window.ended:
                    await window.changed.wait()
                    continue
        else:  # older than the window, another replica's run, or an ended one: all in the log
            fresh = await store.responses.events_after(response_id, last, limit=PAGE)
        for event in fresh:
            last = event["sequence_number"]
            yield event
            if event["type"] in TERMINAL_EVENTS:
                return
        if fresh:
            pause = POLL_S[0]
            continue
        if window is None or window.ended:
            rec = await store.responses.get_any(response_id)
            if rec is None or (
                rec.status in TERMINAL and not await store.responses.events_after(response_id, last)
            ):
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, POLL_S[1])
