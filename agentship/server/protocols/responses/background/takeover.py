"""Taking over the background runs whose replica died.

Every replica sweeps the store for unfinished runs whose owner's lease ran out, and claims one
by compare-and-swap (:meth:`~agentship.state.responses.RunStore.claim`, which counts the
attempt). The run's stream is restored from its event log (:meth:`~..events.ResponseStream.absorb`, page by page): the
earlier attempt's open items are closed (text ``incomplete``, tool calls ``failed``), a
``response.in_progress`` whose metadata says ``agentship_attempt`` marks the restart, and the run
goes again from its stored request, its events numbered on from the earlier attempt's.

A run that had ended, but whose final state was not written, is only finished. A run over
:data:`~.runs.MAX_ATTEMPTS`, or whose stored request cannot be read, ends ``failed``, once: it is
never claimed again.
"""

from __future__ import annotations

import asyncio
import logging

from openai.types.responses import Response, ResponseError

from agentship.errors import StateError
from agentship.server.protocols.responses.background.follow import PAGE
from agentship.server.protocols.responses.background.runs import MAX_ATTEMPTS, BackgroundRuns
from agentship.server.protocols.responses.events import Event, ResponseStream, wire
from agentship.server.protocols.responses.items import agent_items
from agentship.server.protocols.responses.live import LiveResponse
from agentship.server.protocols.responses.request import parse_body
from agentship.server.protocols.responses.stored import Recorder
from agentship.server.protocols.responses.turn import (
    ResponsesTurn,
    agent_input,
    cancelled_error,
    client_tools,
)
from agentship.state import StoredResponse
from agentship.state.records import as_input_item

_logger = logging.getLogger("agentship.server")

RESTARTED = "the run was restarted on another replica"


async def sweep(runs: BackgroundRuns) -> None:
    """Claim orphaned runs, for as long as the replica runs."""
    while True:
        await asyncio.sleep(runs.limits.sweep_s)
        try:
            for response_id in await runs.store.responses.orphans():
                if runs.runs(response_id) or not runs.has_room():
                    continue
                rec = await runs.store.responses.claim(response_id, runs.store.owner, runs.lease_s)
                if rec is not None:
                    await take_over(runs, rec)
        except StateError:
            continue
        except Exception:
            _logger.exception("background sweep failed")


async def _restored(runs: BackgroundRuns, rec: StoredResponse) -> tuple[ResponseStream, Response | None]:
    """The run's stream as its event log left it, read page by page (one page in memory)."""
    stream = ResponseStream(Response.model_validate(rec.response))
    last = -1
    while page := await runs.store.responses.events_after(rec.id, last, limit=PAGE):
        last = int(page[-1]["sequence_number"])
        if (final := stream.absorb(page)) is not None:
            return stream, final
    return stream, None


async def _next_seq(runs: BackgroundRuns, response_id: str) -> int:
    """The sequence number after the run's last event."""
    last = -1
    while page := await runs.store.responses.events_after(response_id, last, limit=PAGE):
        last = int(page[-1]["sequence_number"])
    return last + 1


async def take_over(runs: BackgroundRuns, rec: StoredResponse) -> None:
    """Run ``rec`` again here (it is claimed), or end it if it cannot or need not run."""
    try:
        checked = parse_body(rec.request)
        history = await runs.store.responses.history(rec)
        stream, final = await _restored(runs, rec)
    except StateError:
        raise
    except Exception as exc:  # noqa: BLE001 - a record that cannot be read ends, once
        _logger.warning("background response %s cannot be taken over: %s", rec.id, exc)
        stream = ResponseStream(_base(rec), await _next_seq(runs, rec.id))
        await _fail(runs, rec, stream, "the stored run could not be read back")
        return
    turn = ResponsesTurn(
        agent_input(checked, history, rec.user_id),
        LiveResponse(stream, client_tools(checked)),
        stream=True,
        background=True,
        recorder=Recorder(runs.store, rec),
    )
    if final is not None:  # it had ended: only its final state was not written
        rec.status, rec.response = final.status or "completed", wire(final)
        rec.output = [as_input_item(item) for item in agent_items([wire(i) for i in final.output])]
        await runs.store.responses.finish(rec, runs.store.owner, stream.next_seq, [])
        return
    if rec.attempt - rec.released > MAX_ATTEMPTS:
        message = f"the run was attempted {MAX_ATTEMPTS} times, and each attempt's replica stopped first"
        await _fail(runs, rec, stream, message, turn)
        return
    opening = [*stream.close_pending(RESTARTED), _restart(stream, rec.attempt)]
    if rec.cancel_requested:
        await _cancel(runs, rec, turn, opening)
        return
    _logger.warning("background response %s: taken over (attempt %d)", rec.id, rec.attempt)
    runs.launch(rec, turn, opening)


def _restart(stream: ResponseStream, attempt: int) -> Event:
    metadata = {**(stream.response.metadata or {}), "agentship_attempt": str(attempt)}
    return stream.running(metadata=metadata)


def _base(rec: StoredResponse) -> Response:
    """A response object for a record whose own cannot be read."""
    return Response(
        id=rec.id,
        object="response",
        created_at=int(rec.created_at),
        model="unknown",
        output=[],
        parallel_tool_calls=True,
        tool_choice="auto",
        tools=[],
        error=None,
        background=True,
    )


async def _fail(
    runs: BackgroundRuns,
    rec: StoredResponse,
    stream: ResponseStream,
    message: str,
    turn: ResponsesTurn | None = None,
) -> None:
    error = ResponseError(code="server_error", message=message)
    if turn is not None:
        await runs.end(rec, turn, None, "failed", error=error)
        return
    closing, final = stream.finish("failed", error=error)
    tail = [*closing, stream.ended(final)]
    rec.status, rec.response = "failed", wire(final)
    await runs.store.responses.finish(rec, runs.store.owner, int(tail[0]["sequence_number"]), tail)


async def _cancel(
    runs: BackgroundRuns, rec: StoredResponse, turn: ResponsesTurn, opening: list[Event]
) -> None:
    """A run cancelled while no replica ran it: its restart marker, then its end."""
    error = cancelled_error()
    closing, final = turn.live.stream.finish("cancelled", error=error)
    tail = [*opening, *closing, turn.live.stream.ended(final)]
    assert turn.recorder is not None
    turn.recorder.keep(final)
    await runs.store.responses.finish(rec, runs.store.owner, int(tail[0]["sequence_number"]), tail)
