"""Background responses (``background: true``): answered at once, run on, picked up again.

* :meth:`BackgroundRuns.submit` stores the response as ``queued`` with this replica's lease, and
  answers at once (or streams it live). The run's events are persisted as they happen.
* The owner renews its lease while the run goes on, and learns there of a cancel request.
* Every replica sweeps for runs whose owner's lease ran out (it died, say, by SIGKILL), takes
  one over by compare-and-swap, and runs it again from the start: the earlier attempt's open
  items are closed as ``incomplete`` and a ``response.in_progress`` event whose metadata says
  ``agentship_attempt`` marks the restart, so the client still gets a terminal event.
* :meth:`BackgroundRuns.follow` replays a run's events after a sequence number, then follows
  it live (from memory on the owner, from the store elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.responses import JSONResponse, Response

from agentship.errors import StateError
from agentship.state import StateStore, StoredResponse, replay_state
from agentship.state.records import TERMINAL
from serving._errors import HttpError, classify
from serving._faces import Call, Face, ResponsesEncoder
from serving._openai_stream import ResponseEncoder
from serving._run import AgentRun
from serving._runner import ModelRunner

_logger = logging.getLogger("serving")

_END_EVENTS = ("response.completed", "response.failed", "response.incomplete")


@dataclass
class _Live:
    """A run on this replica: its events so far (by sequence number), for local followers."""

    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    task: asyncio.Task[None] | None = None
    cancelled_by_client: bool = False


@dataclass
class BackgroundRuns:
    store: StateStore
    runner: Callable[[], ModelRunner | None]
    timeout_s: float = 3600.0
    lease_s: float = 10.0
    sweep_s: float = 2.0
    max_runs: int = 64
    _live: dict[str, _Live] = field(default_factory=dict)
    _sweeper: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="server-background-sweeper")

    async def close(self) -> None:
        """Stop sweeping; give up the runs still going so another replica takes them at once."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for response_id, live in list(self._live.items()):
            if live.task is not None:
                live.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await live.task
            with contextlib.suppress(StateError):
                await self.store.responses.release(response_id, self.store.owner)

    # -- submit -------------------------------------------------------------------------------
    async def submit(self, call: Call, face: Face) -> Response:
        if len(self._live) >= self.max_runs:
            raise HttpError(
                429,
                "rate_limit_error",
                f"this replica runs {self.max_runs} background responses already; retry later",
                code="server_busy",
                headers={"Retry-After": "1"},
            )
        assert call.recorder is not None and isinstance(call.encoder, ResponsesEncoder)
        rec = call.recorder.record
        now = self.store.responses.clock()
        rec.status, rec.owner, rec.lease_until, rec.attempt = (
            "queued",
            self.store.owner,
            now + self.lease_s,
            1,
        )
        rec.response = call.encoder.encoder.response("queued")
        await self.store.responses.save(rec)
        self._launch(rec, call, call.encoder.encoder, first_seq=0, opening=call.encoder.start())
        if call.stream:
            return EventSourceResponse(self._framed(rec.id, -1, face), sep="\n", ping=15)
        return JSONResponse(rec.response)

    async def _framed(self, response_id: str, after: int, face: Face) -> AsyncIterator[dict[str, str]]:
        async for event in self.follow(response_id, after):
            yield face.frame(event)

    def _launch(
        self,
        rec: StoredResponse,
        call: Call,
        encoder: ResponseEncoder,
        first_seq: int,
        opening: list[dict[str, Any]],
    ) -> None:
        live = self._live[rec.id] = _Live()
        live.task = asyncio.create_task(
            self._execute(rec, call, encoder, live, first_seq, opening), name="agentship-background"
        )

    # -- run ------------------------------------------------------------------------------------
    async def _execute(
        self,
        rec: StoredResponse,
        call: Call,
        encoder: ResponseEncoder,
        live: _Live,
        first_seq: int,
        opening: list[dict[str, Any]],
    ) -> None:
        writer = _Writer(self.store, rec.id, first_seq)
        heart = asyncio.create_task(self._heartbeat(rec.id, live), name="agentship-heartbeat")
        try:
            await self._publish(live, writer, opening)
            tail, status = await self._drive(rec, call, encoder, live, writer)
            await writer.drain()
            rec.status, rec.response = status, tail[-1]["response"]
            rec.output = call.recorder.output if call.recorder else []
            await self._publish(live, None, tail)
            if not await self.store.responses.finish(rec, self.store.owner, writer.next_seq, tail):
                _logger.warning(
                    "background response %s was taken over; its result is the new owner's", rec.id
                )
        except StateError:
            _logger.warning("background response %s: the store failed; another replica will retry it", rec.id)
        finally:
            heart.cancel()
            writer.close()
            self._live.pop(rec.id, None)
            async with live.changed:
                live.changed.notify_all()

    async def _drive(
        self, rec: StoredResponse, call: Call, encoder: ResponseEncoder, live: _Live, writer: _Writer
    ) -> tuple[list[dict[str, Any]], Any]:
        runner = self.runner()
        if runner is None:
            raise StateError("the model is not loaded")
        # Streamed from the model whatever the request said: anyone may follow a background run
        # live (GET /responses/{id}?stream=true), text deltas included.
        run = AgentRun(runner, call.request, self.timeout_s, rec.id)
        feed = call.encoder.feed
        try:
            async with contextlib.aclosing(run.events()) as events:
                async for agent_event in events:
                    await self._publish(live, writer, feed(agent_event))
        except asyncio.CancelledError:
            if not live.cancelled_by_client:
                raise
            return encoder.failed("cancelled", "the response was cancelled", status="cancelled"), "cancelled"
        except Exception as exc:  # noqa: BLE001 - the failure is the run's outcome
            error = classify(exc)
            return encoder.failed(error.code or error.type, error.message), "failed"
        return encoder.completed(), "completed"

    async def _publish(self, live: _Live, writer: _Writer | None, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        if writer is not None:
            writer.put(events)
        async with live.changed:
            live.events += events
            live.changed.notify_all()

    async def _heartbeat(self, response_id: str, live: _Live) -> None:
        while True:
            await asyncio.sleep(min(self.lease_s / 3, 1.0))
            try:
                control = await self.store.responses.heartbeat(response_id, self.store.owner, self.lease_s)
            except StateError:
                continue  # the lease may run out; then another replica takes the run over
            if live.task is None:
                continue
            if not control.still_owner:
                live.task.cancel()
                return
            if control.cancel_requested and not live.cancelled_by_client:
                live.cancelled_by_client = True
                live.task.cancel()

    def cancel_local(self, response_id: str) -> bool:
        live = self._live.get(response_id)
        if live is None or live.task is None:
            return False
        live.cancelled_by_client = True
        live.task.cancel()
        return True

    # -- follow -----------------------------------------------------------------------------------
    async def follow(self, response_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
        """The run's events with a sequence number above ``after``, then live until it ends."""
        last = after
        while True:
            live = self._live.get(response_id)
            if live is not None:
                async with live.changed:
                    fresh = [e for e in live.events if e["sequence_number"] > last]
                    if not fresh and response_id in self._live:
                        await live.changed.wait()
                        continue
            else:
                fresh = await self.store.responses.events_after(response_id, last)
            for event in fresh:
                last = event["sequence_number"]
                yield event
                if event["type"] in _END_EVENTS:
                    return
            if not fresh and live is None:
                rec = await self.store.responses.get_any(response_id)
                if rec is None or (
                    rec.status in TERMINAL and not await self.store.responses.events_after(response_id, last)
                ):
                    return
                await asyncio.sleep(0.25)

    # -- take over --------------------------------------------------------------------------------
    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                for response_id in await self.store.responses.orphans():
                    if response_id not in self._live and len(self._live) < self.max_runs:
                        rec = await self.store.responses.claim(response_id, self.store.owner, self.lease_s)
                        if rec is not None:
                            await self._take_over(rec)
            except StateError:
                continue
            except Exception:
                _logger.exception("background sweep failed")

    async def _take_over(self, rec: StoredResponse) -> None:
        from serving._resume import resume_call  # the faces' parsing, on the stored request

        events = await self.store.responses.events_after(rec.id, -1, limit=1_000_000)
        state = replay_state(events)
        owner = self.store.owner
        if state.terminal:  # it had ended: only its final state was not written
            end = next(e for e in reversed(events) if e["type"] in _END_EVENTS)
            rec.status, rec.response = end["response"]["status"], end["response"]
            await self.store.responses.finish(rec, owner, state.next_seq, [])
            return
        call, encoder = resume_call(self.store, rec, state)
        opening = resume_events(encoder, state, rec.attempt)
        if rec.cancel_requested:
            tail = opening + encoder.failed("cancelled", "the response was cancelled", status="cancelled")
            rec.status, rec.response = "cancelled", tail[-1]["response"]
            await self.store.responses.finish(rec, owner, state.next_seq, tail)
            return
        _logger.warning("background response %s: taken over (attempt %d)", rec.id, rec.attempt)
        self._launch(rec, call, encoder, first_seq=state.next_seq, opening=opening)


def resume_events(encoder: ResponseEncoder, state: Any, attempt: int) -> list[dict[str, Any]]:
    """Close the earlier attempt's open items as incomplete, then mark the restart."""
    out = []
    for index, item in sorted(state.open_items.items()):
        out.append(
            encoder.event(
                "response.output_item.done", output_index=index, item={**item, "status": "incomplete"}
            )
        )
    marker = encoder.response("in_progress")
    marker["metadata"] = {**(marker.get("metadata") or {}), "agentship_attempt": str(attempt)}
    out.append(encoder.event("response.in_progress", response=marker))
    return out


class _Writer:
    """Persists a run's events in order, in batches, off the run's own path."""

    def __init__(self, store: StateStore, response_id: str, first_seq: int) -> None:
        self.store = store
        self.response_id = response_id
        self.next_seq = first_seq
        self._queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        self._task = asyncio.create_task(self._write(), name="agentship-event-writer")

    def put(self, events: list[dict[str, Any]]) -> None:
        self._queue.put_nowait(events)

    async def _write(self) -> None:
        while True:
            batch = list(await self._queue.get())
            taken = 1
            while not self._queue.empty():
                batch += self._queue.get_nowait()
                taken += 1
            try:
                await self.store.responses.append(self.response_id, self.store.owner, self.next_seq, batch)
            except StateError:
                _logger.warning("could not persist %d events of %s", len(batch), self.response_id)
            self.next_seq += len(batch)
            for _ in range(taken):
                self._queue.task_done()

    async def drain(self) -> None:
        await self._queue.join()

    def close(self) -> None:
        self._task.cancel()
