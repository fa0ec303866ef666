"""Background responses (``background: true``): answered at once, run on, picked up again.

* :meth:`BackgroundRuns.submit` stores the response as ``queued`` with this replica's lease and
  answers at once (or streams it, from ``response.created`` with status ``queued``). The run
  marks itself ``in_progress`` when it starts; its events are written to the store's event log
  as they happen, in order, with no gap (:mod:`.writer`).
* The owner renews its lease while the run goes on, and learns there of a cancel request. If
  it cannot renew for a whole lease, it stops the run: another replica will take it over, and
  two replicas never run it at once.
* A run ends durably before anyone is told: its last events and final state are written in one
  transaction (retried, never re-run), and only then published to followers.
* Every replica sweeps for runs whose owner's lease ran out (it died, say, by SIGKILL) and takes
  one over (:mod:`.takeover`), up to :data:`MAX_ATTEMPTS` attempts (one given up at a replica's
  shutdown does not count).
* :meth:`BackgroundRuns.follow` replays a run's events after a sequence number, then follows it
  live (:mod:`.follow`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.responses import JSONResponse, Response

from agentship.errors import StateError, TurnInterruptedError
from agentship.server.core.errors import HttpError, classify
from agentship.server.core.run import AgentRun
from agentship.server.core.runner import ModelRunner
from agentship.server.protocols.responses import items
from agentship.server.protocols.responses.background.follow import LiveEvents, follow
from agentship.server.protocols.responses.background.writer import EventWriter, LeaseLostError
from agentship.server.protocols.responses.events import Event, Status, frame, wire
from agentship.server.protocols.responses.turn import ResponsesTurn, cancelled_error, response_error
from agentship.state import StateStore, StoredResponse

_logger = logging.getLogger("agentship.server")

MAX_ATTEMPTS = 3
"""Attempts at a run (its first, and takeovers after its replica died) before it ends failed."""
MAX_FOLLOWERS = 256
"""Followers (``GET /responses/{id}?stream=true``) per worker; beyond, 429."""


@dataclass
class _Run:
    """A run on this replica."""

    turn: ResponsesTurn
    live: LiveEvents
    task: asyncio.Task[None] | None = None
    cancelled_by_client: bool = False


def _busy(message: str) -> HttpError:
    return HttpError(429, "rate_limit_error", message, code="server_busy", headers={"Retry-After": "1"})


@dataclass(frozen=True)
class RunLimits:
    """How background runs are run, leased, swept for and followed on one worker."""

    timeout_s: float = 3600.0
    """How long a run may take."""
    lease_s: float = 10.0
    """How long a run's lease lasts unrenewed: a dead replica's runs wait this long to be taken."""
    sweep_s: float = 2.0
    """How often a replica looks for runs to take over."""
    max_runs: int = 64
    """Runs at once; beyond, 429."""
    max_followers: int = MAX_FOLLOWERS


class BackgroundRuns:
    def __init__(self, store: StateStore, runner: ModelRunner, limits: RunLimits = RunLimits()) -> None:
        self.store = store
        self.runner = runner
        self.limits = limits
        self.lease_s = limits.lease_s
        self.followers = 0
        self._runs: dict[str, _Run] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        from agentship.server.protocols.responses.background.takeover import sweep

        self._sweeper = asyncio.create_task(sweep(self), name="server-background-sweeper")

    async def close(self) -> None:
        """Stop sweeping; give up the runs still going, so another replica takes them at once."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for response_id, run in list(self._runs.items()):
            if run.task is not None:
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run.task
            self._runs.pop(response_id, None)  # a task cancelled before it ran never removes itself
            await run.live.end()
            with contextlib.suppress(StateError):
                await self.store.responses.release(response_id, self.store.owner)

    def has_room(self) -> bool:
        return len(self._runs) < self.limits.max_runs

    def runs(self, response_id: str) -> bool:
        return response_id in self._runs

    # -- submit -----------------------------------------------------------------------------------------
    async def submit(self, turn: ResponsesTurn) -> Response:
        if not self.has_room():
            raise _busy(f"this replica runs {self.limits.max_runs} background responses already; retry later")
        assert turn.recorder is not None, "a background response is stored"
        rec = turn.recorder.record
        rec.status, rec.owner, rec.attempt = "queued", self.store.owner, 1
        rec.lease_until = self.store.responses.clock() + self.lease_s
        rec.response = wire(turn.live.stream.snapshot("queued"))
        opening = turn.opening()
        await self.store.responses.save(rec, events=opening)  # a follower always finds the start
        self.launch(rec, turn, opening, durable=True)
        if turn.stream:
            return EventSourceResponse(self._framed(self.follow(rec.id, -1)), sep="\n", ping=15)
        return JSONResponse(rec.response)

    async def _framed(self, events: AsyncIterator[Event]) -> AsyncIterator[dict[str, str]]:
        async for event in events:
            yield frame(event)

    def launch(
        self, rec: StoredResponse, turn: ResponsesTurn, opening: list[Event], durable: bool = False
    ) -> None:
        """Run ``rec`` here, its stream opened by ``opening`` (already written, if ``durable``)."""
        run = self._runs[rec.id] = _Run(turn, LiveEvents(int(opening[0]["sequence_number"])))
        run.task = asyncio.create_task(self._execute(rec, run, opening, durable), name="agentship-background")

    # -- run ----------------------------------------------------------------------------------------------
    async def _execute(self, rec: StoredResponse, run: _Run, opening: list[Event], durable: bool) -> None:
        next_seq = int(opening[-1]["sequence_number"]) + 1 if durable else run.live.first_seq
        writer = EventWriter(self.store, rec.id, next_seq, give_up_after_s=self.lease_s)
        heart = asyncio.create_task(self._heartbeat(rec.id, run), name="agentship-heartbeat")
        try:
            if durable:
                await run.live.add(opening, writer.next_seq)
            else:
                await self._publish(run, writer, opening)
            if await self.store.responses.start(rec.id, self.store.owner):
                await self._publish(run, writer, [run.turn.live.stream.running()])
            status, fields = await self._drive(rec, run, writer)
            await self.end(rec, run.turn, writer, status, **fields)
        except (StateError, asyncio.CancelledError) as exc:
            _logger.warning(
                "background response %s stopped (%s); another replica will take it over",
                rec.id,
                type(exc).__name__,
            )
        finally:
            heart.cancel()
            writer.close()
            await run.live.end()
            self._runs.pop(rec.id, None)

    async def _drive(
        self, rec: StoredResponse, run: _Run, writer: EventWriter
    ) -> tuple[Status, dict[str, Any]]:
        """Run the agent; the status it ended with, and that status's fields."""
        # Streamed from the model whatever the request said: anyone may follow a background run
        # live (GET /responses/{id}?stream=true), text deltas included.
        agent_run = AgentRun(self.runner, run.turn.request, self.limits.timeout_s, rec.id)
        try:
            async with contextlib.aclosing(agent_run.events()) as events:
                async for agent_event in events:
                    await self._publish(run, writer, run.turn.feed(agent_event))
        except asyncio.CancelledError:
            if not run.cancelled_by_client:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the client's cancel is the run's outcome, not this task's end
            return "cancelled", {"error": cancelled_error()}
        except LeaseLostError:
            raise
        except TurnInterruptedError as exc:  # a newer message of its conversation stopped it
            if exc.mode == "interrupt":
                return "incomplete", {"usage": items.usage(run.turn.live.usage)}
            return "cancelled", {"error": response_error(classify(exc))}
        except Exception as exc:  # noqa: BLE001 - the failure is the run's outcome
            return "failed", {"error": response_error(classify(exc))}
        return "completed", {"usage": items.usage(run.turn.live.usage)}

    async def end(
        self,
        rec: StoredResponse,
        turn: ResponsesTurn,
        writer: EventWriter | None,
        status: Status,
        **fields: Any,
    ) -> None:
        """End the run: its last events and final state written at once, then published."""
        closing, final = turn.live.stream.finish(status, **fields)
        tail = [*closing, turn.live.stream.ended(final)]
        if writer is not None:
            await writer.drain()
        assert turn.recorder is not None
        turn.recorder.keep(final)
        deadline = time.monotonic() + self.lease_s
        while True:
            try:
                if not await self.store.responses.finish(
                    rec, self.store.owner, int(tail[0]["sequence_number"]), tail
                ):
                    _logger.warning(
                        "background response %s was taken over; its result is the new owner's", rec.id
                    )
                    return
                break
            except StateError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        run = self._runs.get(rec.id)
        if run is not None:
            await run.live.add(tail, durable_seq=int(tail[-1]["sequence_number"]) + 1)

    async def _publish(self, run: _Run, writer: EventWriter, events: list[Event]) -> None:
        if events:
            await writer.put(events)
            await run.live.add(events, writer.next_seq)

    async def _heartbeat(self, response_id: str, run: _Run) -> None:
        """Renew the lease; stop the run if it was lost, or could not be renewed for a lease."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(min(self.lease_s / 3, 1.0))
            try:
                control = await self.store.responses.heartbeat(response_id, self.store.owner, self.lease_s)
            except StateError:
                if time.monotonic() - renewed < self.lease_s * 0.8 or run.task is None:
                    continue
                _logger.warning(
                    "background response %s: the lease could not be renewed; stopping it", response_id
                )
                run.task.cancel()
                return
            renewed = time.monotonic()
            if run.task is None:
                continue
            if not control.still_owner:
                run.task.cancel()
                return
            if control.cancel_requested and not run.cancelled_by_client:
                run.cancelled_by_client = True
                run.task.cancel()

    def cancel_local(self, response_id: str) -> bool:
        run = self._runs.get(response_id)
        if run is None or run.task is None:
            return False
        run.cancelled_by_client = True
        run.task.cancel()
        return True

    # -- follow -------------------------------------------------------------------------------------------
    def follow(self, response_id: str, after: int) -> AsyncIterator[Event]:
        """The run's events with a sequence number above ``after``, then live until it ends; 429
        here, before any stream starts, when this replica has :attr:`max_followers` already."""
        if self.followers >= self.limits.max_followers:
            raise _busy(f"this replica has {self.limits.max_followers} followers already; retry later")
        return self._following(response_id, after)

    async def _following(self, response_id: str, after: int) -> AsyncIterator[Event]:
        def live() -> LiveEvents | None:
            run = self._runs.get(response_id)
            return None if run is None else run.live

        self.followers += 1
        try:
            async for event in follow(self.store, live, response_id, after):
                yield event
        finally:
            self.followers -= 1
