"""The agent routes, as four named steps: admit, read and parse, run, encode.

:class:`AgentEndpoint` is an ASGI app (one per route and face). It takes a slot, and
everything after that runs inside one ``try`` whose ``finally`` releases it, whatever is
raised and whether the answer is a JSON body or a stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from agentship.errors import StateError
from agentship.state.records import Status
from serving._admission import Admission
from serving._body import ClientGone, read_json
from serving._errors import HttpError, classify
from serving._faces import RETURN_TRACE_HEADER, Call, Face, RequestInfo
from serving._run import AgentRun
from serving._runner import ModelRunner
from serving._settings import ServerSettings
from serving._stored import USER_HEADER

AUTH_IDENTITY = "agentship.identity"
"""The ASGI scope key of the identity :mod:`serving._auth` authenticated."""

if TYPE_CHECKING:
    from agentship.state import StateStore
    from agentship.trace_export import TraceExport
    from serving._background import BackgroundRuns

_logger = logging.getLogger("serving")


@dataclass
class ServerState:
    """What the routes share: the settings, the loaded model (None while loading), admission."""

    settings: ServerSettings
    runner: ModelRunner | None = None
    load_error: str | None = None
    started: float = field(default_factory=time.monotonic)
    admission: Admission = field(init=False)
    store: StateStore | None = None
    background: BackgroundRuns | None = None
    traces: TraceExport | None = None
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run at shutdown, before the model closes (the A2A request handler's drain, say)."""

    def __post_init__(self) -> None:
        self.admission = Admission(self.settings.max_concurrency, self.settings.retry_after_s)


def error_response(error: HttpError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers or None)


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


class AgentEndpoint:
    """``POST`` an agent request through ``face``."""

    def __init__(self, state: ServerState, face: Face) -> None:
        self.state = state
        self.face = face

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body, then take a slot: a client still uploading holds none (its body has
        time limits of its own), so slow uploads cannot shut everyone else out."""
        request = Request(scope, receive)
        runner = self.state.runner
        try:
            if runner is None:
                raise HttpError(
                    503,
                    "server_error",
                    "the model is still loading",
                    "not_ready",
                    headers={"Retry-After": "1"},
                )
            body = await read_json(request, self.state.settings.body_limits)
            slot = self.state.admission.admit()
        except ClientGone:
            _logger.info("client disconnected while sending its request")
            return
        except HttpError as error:
            await error_response(error)(scope, receive, send)
            return
        try:
            response = await self._respond(request, runner, body)
            if response is not None:
                await response(scope, receive, send)
        finally:
            slot.release()

    def _classify(self, exc: BaseException) -> HttpError:
        return classify(exc, self.state.settings.retry_after_s)

    # -- parse --------------------------------------------------------------------------------
    async def _call(self, request: Request, body: dict[str, Any]) -> Call:
        info = RequestInfo(
            return_trace=request.headers.get(RETURN_TRACE_HEADER, "").lower() == "true",
            user=request.headers.get(USER_HEADER) or None,
            authenticated=AUTH_IDENTITY in request.scope,
        )
        return await self.face.parse(body, info)

    async def _respond(self, request: Request, runner: ModelRunner, body: dict[str, Any]) -> Response | None:
        """The answer to send, or None when the client has gone (nothing to send)."""
        try:
            call = await self._call(request, body)
            if call.background:
                assert self.state.background is not None  # a face only allows it with a store
                return await self.state.background.submit(call, self.face)
        except Exception as exc:  # noqa: BLE001 - every failure is an HTTP answer
            return error_response(self._classify(exc))
        timeout_s = self.state.settings.request_timeout_s
        run = AgentRun(runner, call.request, timeout_s, call.response_id, deltas=call.stream)
        if call.stream:
            return EventSourceResponse(
                self._stream(run, call),
                sep="\n",
                ping=15,
                shutdown_grace_period=self.state.settings.drain_timeout_s,
            )
        return await self._complete(request, run, call)

    # -- run and encode -----------------------------------------------------------------------
    async def _complete(self, request: Request, run: AgentRun, call: Call) -> Response | None:
        """Run to the end, unless the client goes away first (then the work is cancelled)."""

        async def drain() -> None:
            async with aclosing(run.events()) as events:
                async for event in events:
                    call.encoder.feed(event)

        work = asyncio.ensure_future(drain())
        gone = asyncio.ensure_future(_until_disconnect(request))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not work.done():
                work.cancel()
                with suppress(asyncio.CancelledError):
                    await work
                _logger.info("client disconnected; request cancelled")
        if work.cancelled():
            return None
        if (exc := work.exception()) is not None:
            error = self._classify(exc)
            if call.recorder is not None:
                call.encoder.fail(error)
                await self._store(call, "failed")
            return error_response(error)
        body = call.encoder.body(run.trace_id)
        try:
            await self._store(call, "completed")
        except StateError as failure:
            return error_response(self._classify(failure))
        return JSONResponse(body)

    async def _store(self, call: Call, status: Status) -> None:
        """Store the response (before the client sees its end); a failed one only if possible."""
        if call.recorder is None:
            return
        final = getattr(call.encoder, "final", None) or {}
        try:
            await call.recorder.save(status, final)
        except StateError:
            if status == "completed":
                raise
            _logger.warning("could not store the failed response %s", call.response_id)

    async def _tail(self, call: Call, tail: list[dict[str, Any]], status: Status) -> list[dict[str, Any]]:
        try:
            await self._store(call, status)
        except StateError as exc:  # the answer cannot be continued from: say so, not "completed"
            return [*tail[:-1], *call.encoder.replace_end(self._classify(exc))]
        return tail

    async def _stream(self, run: AgentRun, call: Call) -> AsyncIterator[dict[str, str]]:
        frame, encoder = self.face.frame, call.encoder
        for event in encoder.start():
            yield frame(event)
        try:
            async with aclosing(run.events()) as events:
                async for agent_event in events:
                    for event in encoder.feed(agent_event):
                        yield frame(event)
        except Exception as exc:  # noqa: BLE001 - a failure mid-stream ends the stream
            tail = await self._tail(call, encoder.fail(self._classify(exc)), "failed")
        else:
            tail = await self._tail(call, encoder.finish(run.trace_id), "completed")
        for event in tail:
            yield frame(event)
        if self.face.end_marker:
            yield {"data": self.face.end_marker}
