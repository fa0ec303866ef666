"""The A2A ``AgentExecutor`` of the served model: the only part of the protocol written here.

The SDK parses requests, keeps tasks and streams their events; the executor runs one task:
it announces the task, runs the agent request in an :class:`~agentship.server.core.run.AgentRun`
(one MLflow trace, tagged with the task and context ids, under the server's request timeout) and
publishes the events :class:`~.events.TaskEncoder` makes of the agent's.

* The task's user is the request's, by the identity rule
  (:mod:`agentship.server.http.identity`), decided when the HTTP request arrived.
* A failure of the run ends the task ``failed``, with the message and code of
  :func:`agentship.server.core.errors.classify` (never a traceback or an upstream body).
* While a client waits for the answer (``SendMessage`` without ``returnImmediately``, or a
  stream), its disconnecting cancels the run, and with it the backend call; the task ends
  ``canceled``.
* ``CancelTask`` cancels the run the same way (the SDK cancels :meth:`execute`).
* The request's admission slot (:mod:`.routes`) is held until the run ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue

from agentship.server.core.admission import Slot
from agentship.server.core.errors import classify
from agentship.server.core.race import Stopped, unless
from agentship.server.core.run import AgentRun
from agentship.server.http.identity import Identity
from agentship.server.protocols.a2a.events import TaskEncoder, agent_request

if TYPE_CHECKING:
    from agentship.server.services import Services

_logger = logging.getLogger("agentship.server")

EXCHANGE = "agentship.a2a"
"""The key of the :class:`Exchange` in the ASGI scope and in the SDK's call-context state."""


@dataclass
class Exchange:
    """One HTTP request to the A2A endpoint: its admission slot and whether its client left."""

    slot: Slot | None
    identity: Identity
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    def take_slot(self) -> Slot | None:
        """The slot, for a run to hold until it ends (the HTTP request no longer releases it)."""
        slot, self.slot = self.slot, None
        return slot

    def release(self) -> None:
        """At the end of the HTTP request: give the slot back unless a run took it."""
        if self.slot is not None:
            self.slot.release()


def user_of(context: RequestContext) -> str | None:
    """The task's user, as the identity rule decided it for the HTTP request."""
    exchange = context.call_context.state.get(EXCHANGE)
    return exchange.identity.user or None if isinstance(exchange, Exchange) else None


async def _unless_gone(work: Awaitable[None], gone: asyncio.Event | None) -> bool:
    """Await ``work``; False if ``gone`` is set first (then ``work`` is cancelled and awaited)."""
    if gone is None:
        await work
        return True
    try:
        await unless(work, gone.wait())
    except Stopped:
        return False
    return True


class ServedAgentExecutor(AgentExecutor):
    """Runs A2A tasks on the server's loaded model."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        exchange = context.call_context.state.get(EXCHANGE)
        slot = exchange.take_slot() if isinstance(exchange, Exchange) else None
        try:
            waits = not (context.configuration and context.configuration.return_immediately)
            gone = exchange.gone if isinstance(exchange, Exchange) and waits else None
            await self._execute(context, event_queue, gone)
        finally:
            if slot is not None:
                slot.release()

    async def _execute(self, context: RequestContext, queue: EventQueue, gone: asyncio.Event | None) -> None:
        runner, settings = self.services.runner, self.services.settings
        if context.message is None or not context.task_id or not context.context_id:
            raise RuntimeError("an A2A task started without a message")
        encoder = TaskEncoder(context.task_id, context.context_id)
        if context.current_task is None:
            await queue.enqueue_event(encoder.submitted(context.message))
        await queue.enqueue_event(encoder.working())
        request = agent_request(context.message, context.context_id, user_of(context))
        tags = {"a2a.task_id": context.task_id, "a2a.context_id": context.context_id}
        run = AgentRun(runner, request, settings.request_timeout_s, tags=tags)

        async def publish() -> None:
            async with aclosing(run.events()) as events:
                async for event in events:
                    for out in encoder.feed(event):
                        await queue.enqueue_event(out)

        try:
            finished = await _unless_gone(publish(), gone)
        except Exception as exc:  # noqa: BLE001 - a failed run is a failed task
            await queue.enqueue_event(encoder.failed(classify(exc, settings.retry_after_s)))
            return
        if not finished:
            _logger.info("A2A client disconnected; task %s cancelled", context.task_id)
            await queue.enqueue_event(encoder.cancelled("the client disconnected"))
            return
        await queue.enqueue_event(encoder.completed(run.trace_id))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """``CancelTask``: the SDK then cancels :meth:`execute`, and with it the run."""
        if context.task_id and context.context_id:
            encoder = TaskEncoder(context.task_id, context.context_id)
            await event_queue.enqueue_event(encoder.cancelled("cancelled by the client"))
