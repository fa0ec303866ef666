"""The agent routes, as named steps: read, admit, open the turn, run, encode.

:class:`AgentEndpoint` is an ASGI app, one per route, over the route's protocol
(:mod:`agentship.server.protocols`). It reads the body first (within its size and time limits,
:mod:`.body`), so a client still uploading holds no slot; then it takes a slot, and everything
after that runs inside one ``try`` whose ``finally`` releases it, whatever is raised and whether
the answer is a JSON body or a stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from agentship.server.core.admission import Slot
from agentship.server.core.errors import HttpError, classify, invalid
from agentship.server.core.race import Stopped, unless
from agentship.server.core.run import AgentRun
from agentship.server.http.body import ClientGone, read_json, until_disconnect
from agentship.server.http.double_texting import requested_policy
from agentship.server.http.idempotency import idempotency_key
from agentship.server.http.quotas import METER, Admitted, Meter
from agentship.server.protocols.turn import AgentProtocol, Turn
from agentship.state.double_texting import DOUBLE_TEXTING

if TYPE_CHECKING:
    from agentship.server.services import Services

_logger = logging.getLogger("agentship.server")


def error_response(error: HttpError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers or None)


async def _never() -> None:
    await asyncio.Event().wait()


class AgentEndpoint:
    """``POST`` an agent request through ``protocol``."""

    def __init__(self, services: Services, protocol: AgentProtocol) -> None:
        self.services = services
        self.protocol = protocol

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            body = await read_json(request, self.services.settings.body_limits)
            slot = self.services.admission.admit()
        except ClientGone:
            _logger.info("client disconnected while sending its request")
            return
        except HttpError as error:
            await error_response(error)(scope, receive, send)
            return
        try:
            response = await self._answer(request, body, slot)
            if response is not None:
                await response(scope, receive, send)
        finally:
            slot.release()

    def _classify(self, exc: BaseException) -> HttpError:
        return classify(exc, self.services.settings.retry_after_s)

    async def _answer(self, request: Request, body: dict[str, Any], slot: Slot) -> Response | None:
        """The answer to send (None when the client has gone): a keyed request's through
        :mod:`.idempotency`, which runs it detached from its client (holding ``slot`` until it
        ends)."""
        try:
            admitted = await self._admit(request)
            response = await self._keyed(request, body, slot)
        except Exception as exc:  # noqa: BLE001 - every failure is an HTTP answer
            return error_response(self._classify(exc))
        if admitted is not None and response is not None:
            response.headers.update(admitted.headers)
        return response

    async def _admit(self, request: Request) -> Admitted | None:
        """Count the request against its caller's limits (a 429 past one); its runs count what
        they spend through the meter this sets."""
        limiter = self.services.limits
        if limiter is None:
            return None
        admitted = await limiter.admit_scope(request.scope)
        if admitted is not None:
            METER.set(Meter(limiter, admitted))
        return admitted

    async def _keyed(self, request: Request, body: dict[str, Any], slot: Slot) -> Response | None:
        """The answer, through :mod:`.idempotency` when the request has a key."""
        key = idempotency_key(request)
        if key is None:
            return await self._respond(request, body)
        keyed = self.services.idempotency
        if keyed is None:
            raise invalid(
                "Idempotency-Key needs the state store, and it is off (AGENTSHIP_STATE_URL=none)",
                param="Idempotency-Key",
            )
        claimed = self.protocol.claimed_user(body)
        return await keyed.respond(request, key, claimed, body, slot, lambda: self._detached(request, body))

    async def _detached(self, request: Request, body: dict[str, Any]) -> Response:
        response = await self._respond(request, body, detached=True)
        assert response is not None, "a detached run always answers"
        return response

    async def _respond(
        self, request: Request, body: dict[str, Any], detached: bool = False
    ) -> Response | None:
        """The answer to send, or None when the client has gone (nothing to send). A ``detached``
        run goes on when its client goes (and always answers)."""
        try:
            DOUBLE_TEXTING.set(requested_policy(request, body))
            turn = await self.protocol.open(body, request)
        except Exception as exc:  # noqa: BLE001 - every failure is an HTTP answer
            return error_response(self._classify(exc))
        if isinstance(turn, Response):
            return turn
        run = AgentRun(
            self.services.runner,
            turn.request,
            self.services.settings.request_timeout_s,
            turn.response_id,
            deltas=turn.stream,
        )
        if turn.stream:
            return EventSourceResponse(
                self._stream(run, turn),
                sep="\n",
                ping=15,
                shutdown_grace_period=self.services.settings.drain_timeout_s,
            )
        return await self._complete(request, run, turn, detached)

    async def _complete(self, request: Request, run: AgentRun, turn: Turn, detached: bool) -> Response | None:
        """Run to the end, unless the client goes away first (then the work is cancelled, unless
        it is ``detached``)."""

        async def drain() -> None:
            async with aclosing(run.events()) as events:
                async for event in events:
                    turn.feed(event)

        try:
            await unless(drain(), _never() if detached else until_disconnect(request))
        except Stopped:
            _logger.info("client disconnected; request cancelled")
            return None
        except Exception as exc:  # noqa: BLE001 - the run's failure is the answer
            error = self._classify(exc)
            await turn.fail(error)
            if not turn.answered:
                return error_response(error)
        else:
            await turn.finish(run.trace_id)
        try:
            return JSONResponse(turn.result())
        except HttpError as error:
            return error_response(error)

    async def _stream(self, run: AgentRun, turn: Turn) -> AsyncIterator[dict[str, str]]:
        for event in turn.opening():
            yield turn.frame(event)
        try:
            async with aclosing(run.events()) as events:
                async for agent_event in events:
                    for event in turn.feed(agent_event):
                        yield turn.frame(event)
        except Exception as exc:  # noqa: BLE001 - a failure mid-stream ends the stream
            tail = await turn.fail(self._classify(exc))
        else:
            tail = await turn.finish(run.trace_id)
        for event in tail:
            yield turn.frame(event)
        if turn.end_marker:
            yield {"data": turn.end_marker}
