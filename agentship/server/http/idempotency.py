"""``Idempotency-Key`` on ``POST /responses`` and ``POST /invocations``: a retry never runs the work
twice.

The first request with a key claims it in the state store (:mod:`agentship.state.idempotency`)
and runs *detached* from its client: a client that goes away (the lost connection a retry is
for) no longer cancels it. What it answers is recorded as it goes (a JSON body, or each frame of
its event stream), kept under the key when it ends, and sent to every request with the key:

* on the same replica, while it runs: a duplicate joins it, and reads its stream live from the
  first frame;
* on another replica, while it runs: a duplicate waits for it to end (polling the store), then
  gets its answer; if it has not ended within the request timeout, a 409
  (``idempotency_key_in_use``, with ``Retry-After``);
* once it ended, on any replica, for the key's TTL (``AGENTSHIP_IDEMPOTENCY_TTL_S``, a day): the
  answer, replayed, with the header ``Idempotent-Replayed: true``.

A key belongs to the request's user (the identity rule), and to one request: the same key with
a different body (or on the other route) is a 422 (``idempotency_key_reused``), as the IETF's
Idempotency-Key draft has it. An answer that says nothing ran (429, 503: the server was busy or
the store down) is not kept, so the retry runs; every other answer, failures included, is the
key's. If the replica running it dies, its claim's lease runs out and the next request with
the key runs it again (the conversation's turn machinery takes the broken turn back).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from agentship.errors import StateError
from agentship.server.core.admission import Slot
from agentship.server.core.errors import HttpError, classify, invalid
from agentship.server.core.race import Stopped, unless
from agentship.server.http.body import until_disconnect
from agentship.server.http.identity import identify
from agentship.state import StateStore
from agentship.state.idempotency import Claimed

_logger = logging.getLogger("agentship.server")

HEADER = "idempotency-key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY = 255
NOT_KEPT = frozenset({408, 409, 425, 429, 503})
"""Answers that say the work did not run: the key is let go, so a retry runs."""
RAN = frozenset({"turn_interrupted", "turn_rolled_back"})
"""Codes of :data:`NOT_KEPT` statuses whose work did run (a newer message stopped it): kept."""
POLL_S = (0.1, 0.2, 0.4, 0.8, 1.0)
"""How often a request waiting on another replica's run of its key looks again."""

type Start = Callable[[], Awaitable[Response]]


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key``; a 400 when it cannot be one."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_KEY or not raw.isascii() or not raw.isprintable():
        raise invalid(
            f"the Idempotency-Key header must be 1 to {MAX_KEY} printable ASCII characters",
            param="Idempotency-Key",
        )
    return raw


def fingerprint(path: str, body: dict[str, Any]) -> str:
    """What makes two requests the same request: the route and the body, as JSON data."""
    canonical = json.dumps([path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _reused() -> HttpError:
    return HttpError(
        422,
        "invalid_request_error",
        "this Idempotency-Key was used with a different request: use a new key for a new request",
        code="idempotency_key_reused",
        param="Idempotency-Key",
    )


@dataclass
class Answer:
    """What a request answered: its status, its headers, and a JSON body or an event stream."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    frames: list[dict[str, Any]] | None = None

    @property
    def kept(self) -> bool:
        if self.status not in NOT_KEPT:
            return True
        try:
            return json.loads(self.body or "{}")["error"]["code"] in RAN
        except (ValueError, KeyError, TypeError):
            return False

    def wire(self) -> dict[str, Any]:
        return {"status": self.status, "headers": self.headers, "body": self.body, "frames": self.frames}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Answer:
        return cls(int(data["status"]), dict(data.get("headers") or {}), data.get("body"), data.get("frames"))

    def response(self) -> Response:
        """The answer, replayed."""
        headers = {**self.headers, REPLAYED: "true"}
        if self.frames is not None:
            return EventSourceResponse(_each(self.frames), self.status, headers=headers, sep="\n", ping=15)
        return Response(self.body, self.status, headers=headers, media_type="application/json")


async def _each(frames: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for frame in frames:
        yield frame


_KEPT_HEADERS = frozenset({"retry-after", "x-request-id"})


class KeyedRun:
    """A keyed request running on this replica, and what it has answered so far."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.status = 200
        self.headers: dict[str, str] = {}
        self.frames: list[dict[str, Any]] | None = None
        self.answer: Answer | None = None
        self._changed = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def record(self, response: Response) -> None:
        """Follow ``response`` to its end, recording it (listeners see each frame as it comes)."""
        self.status = response.status_code
        self.headers = {k: v for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS}
        if isinstance(response, EventSourceResponse):
            self.frames = []
            await self._notify()
            async for frame in response.body_iterator:
                self.frames.append(dict(frame) if isinstance(frame, dict) else {"data": str(frame)})
                await self._notify()
            self.answer = Answer(self.status, self.headers, frames=self.frames)
        else:
            self.answer = Answer(self.status, self.headers, body=bytes(response.body).decode())

    async def end(self, answer: Answer) -> None:
        self.answer = answer
        await self._notify()

    async def started(self) -> None:
        """Wait until the answer is known to be a stream, or has ended."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.frames is not None or self.answer is not None)

    async def follow(self) -> AsyncIterator[dict[str, Any]]:
        """The stream's frames, from the first, as they come, to its end."""
        sent = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._beyond, sent))
            frames = self.frames or []
            while sent < len(frames):
                yield frames[sent]
                sent += 1
            if self.answer is not None and sent >= len(frames):
                return

    def _beyond(self, sent: int) -> bool:
        return len(self.frames or ()) > sent or self.answer is not None

    def response(self, replayed: bool) -> Response:
        """The answer to a client (once :meth:`started`): the stream live, or the ended answer."""
        headers = {**self.headers, **({REPLAYED: "true"} if replayed else {})}
        if self.frames is not None:
            return EventSourceResponse(self.follow(), self.status, headers=headers, sep="\n", ping=15)
        assert self.answer is not None
        return Response(self.answer.body, self.answer.status, headers=headers, media_type="application/json")


class Idempotency:
    """The keyed requests of one worker."""

    def __init__(self, store: StateStore, wait_s: float, retry_after_s: int) -> None:
        self.store = store
        self.wait_s = wait_s
        """How long a request waits for another replica's run of its key before a 409 (as long
        as it would be let run itself: the request timeout)."""
        self.retry_after_s = retry_after_s
        self.runs: dict[tuple[str, str], KeyedRun] = {}

    async def respond(
        self,
        request: Request,
        key: str,
        claimed_user: str | None,
        body: dict[str, Any],
        slot: Slot,
        start: Start,
    ) -> Response | None:
        """The answer for a keyed request (None if its client left while it waited). ``slot`` is
        released here, or by the run this request starts, when it ends."""
        user = identify(request.scope, claimed_user).user
        mark = fingerprint(request.url.path, body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        for attempt in itertools.count():
            local = self.runs.get((user, key))
            if local is not None:
                if local.fingerprint != mark:
                    raise _reused()
                return await self._join(request, local, replayed=True)
            claim = await self.store.idempotency.claim(user, key, mark)
            if isinstance(claim, Claimed):
                run = self._launch(user, key, mark, slot.transfer(), start)
                return await self._join(request, run, replayed=False)
            record = claim.record
            if record.fingerprint != mark:
                raise _reused()
            if record.status == "done" and record.answer is not None:
                return Answer.from_wire(record.answer).response()
            if loop.time() > deadline:
                raise HttpError(
                    409,
                    "invalid_request_error",
                    "a request with this Idempotency-Key is still running; retry later",
                    code="idempotency_key_in_use",
                    param="Idempotency-Key",
                    headers={"Retry-After": str(self.retry_after_s)},
                )
            try:
                await unless(asyncio.sleep(POLL_S[min(attempt, len(POLL_S) - 1)]), until_disconnect(request))
            except Stopped:
                return None
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self, user: str, key: str, mark: str, slot: Slot, start: Start) -> KeyedRun:
        run = self.runs[(user, key)] = KeyedRun(mark)
        run.task = asyncio.create_task(self._run(user, key, run, slot, start), name="agentship-keyed")
        return run

    async def _join(self, request: Request, run: KeyedRun, replayed: bool) -> Response | None:
        try:
            await unless(run.started(), until_disconnect(request))
        except Stopped:
            return None  # the run goes on: the client's retry will find it
        return run.response(replayed)

    async def _run(self, user: str, key: str, run: KeyedRun, slot: Slot, start: Start) -> None:
        keeper = asyncio.create_task(self._keep(user, key), name="agentship-keyed-lease")
        answer: Answer | None = None
        try:
            try:
                await run.record(await start())
                answer = run.answer or Answer(500)
            except Exception as exc:  # noqa: BLE001 - every failure is an answer
                error = classify(exc, self.retry_after_s)
                if run.frames is not None:  # the stream broke off: what was sent is the answer
                    answer = Answer(run.status, run.headers, frames=run.frames)
                else:
                    answer = Answer(error.status, dict(error.headers or {}), body=json.dumps(error.body()))
            await self._settle(user, key, answer)
        except asyncio.CancelledError:  # the server stops: let the key go, its retry runs
            with contextlib.suppress(StateError):
                await self.store.idempotency.release(user, key)
            raise
        finally:
            keeper.cancel()
            slot.release()
            self.runs.pop((user, key), None)
            await run.end(answer or Answer(503, body=json.dumps(_stopped().body())))

    async def _settle(self, user: str, key: str, answer: Answer) -> None:
        try:
            if answer.kept:
                if not await self.store.idempotency.finish(user, key, answer.wire()):
                    _logger.warning("an idempotency key's claim was taken over before its answer was kept")
            else:
                await self.store.idempotency.release(user, key)
        except StateError:
            # the claim's lease runs out, and the key's next request runs again
            _logger.warning("could not keep the answer of an idempotent request")

    async def _keep(self, user: str, key: str) -> None:
        """Renew the claim while the run goes on (every third of the lease)."""
        while True:
            await asyncio.sleep(self.store.idempotency.lease_s / 3)
            try:
                if not await self.store.idempotency.renew(user, key):
                    _logger.warning("an idempotency key's claim was lost while its request ran")
                    return
            except StateError:
                continue

    async def close(self, grace_s: float) -> None:
        """Let the runs still going finish for up to ``grace_s``, then stop them (their keys go)."""
        tasks = [run.task for run in self.runs.values() if run.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _stopped() -> HttpError:
    return HttpError(503, "server_error", "the server stopped before the request ended; retry it")
