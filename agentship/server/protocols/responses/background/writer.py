"""A background run's event log, written in order, in batches, off the run's own path.

Events are queued as the run makes them (a bounded queue: a run that outpaces the store waits
for it) and written by one task, each batch at the sequence numbers its events carry. A batch
the store refuses is written again, the same batch in the same place, until it is written or
the run's lease would have run out: then :attr:`EventWriter.lost` is set and the run must stop,
because another replica will take it over. The log never has a gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from agentship.errors import StateError
from agentship.server.core.race import Stopped, unless
from agentship.state import StateStore

_logger = logging.getLogger("agentship.server")

QUEUE_BATCHES = 256
"""Batches of events waiting to be written before the run waits for the store."""


class LeaseLostError(StateError):
    """The run can no longer write its events: its lease ran out, or another replica owns it."""


class EventWriter:
    def __init__(self, store: StateStore, response_id: str, next_seq: int, give_up_after_s: float) -> None:
        self.store = store
        self.response_id = response_id
        self.next_seq = next_seq
        """The sequence number after the last event written (what is durable)."""
        self.give_up_after_s = give_up_after_s
        self.lost = asyncio.Event()
        self._queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue(QUEUE_BATCHES)
        self._task = asyncio.create_task(self._write(), name="agentship-event-writer")

    async def put(self, events: list[dict[str, Any]]) -> None:
        if self.lost.is_set():
            raise LeaseLostError("the run's events can no longer be written")
        await self._queue.put(events)

    async def _write(self) -> None:
        while True:
            batch = list(await self._queue.get())
            taken = 1
            while not self._queue.empty():
                batch += self._queue.get_nowait()
                taken += 1
            try:
                await self._append(batch)
            except LeaseLostError:
                self.lost.set()
                _logger.warning(
                    "background response %s: its events can no longer be written", self.response_id
                )
                return
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    async def _append(self, batch: list[dict[str, Any]]) -> None:
        """Write ``batch`` where its numbers say, retrying with backoff within the lease."""
        first = int(batch[0]["sequence_number"])
        deadline = time.monotonic() + self.give_up_after_s
        pause = 0.05
        while True:
            try:
                if not await self.store.responses.append(self.response_id, self.store.owner, first, batch):
                    raise LeaseLostError("another replica owns the run")
                self.next_seq = first + len(batch)
                return
            except LeaseLostError:
                raise
            except StateError as exc:
                if time.monotonic() + pause > deadline:
                    raise LeaseLostError("the store stayed down past the run's lease") from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    async def drain(self) -> None:
        """Until every event put so far is written; :class:`LeaseLostError` if it cannot be."""
        try:
            await unless(self._queue.join(), self.lost.wait())
        except Stopped as exc:
            raise LeaseLostError("the run's events can no longer be written") from exc

    def close(self) -> None:
        self._task.cancel()
