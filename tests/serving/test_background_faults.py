"""Background runs when the store misbehaves, in process: the real served model (the registered
agent over the scripted model) and a real SQLite store, with one store call made to fail.

* a batch of events the store refuses is written again in its place: the log has no gap;
* a store that stays down past the lease stops the run (another replica will take it over);
* a run ends durably before anyone hears of it: a follower never sees a terminal event whose
  state is not stored, and a failed finish is written again, not run again;
* attempts are capped: a run past its attempts, or whose record cannot be read, ends ``failed``
  once and is never claimed again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from agentship.errors import StateError
from agentship.server.core.runner import ModelRunner
from agentship.server.protocols.responses.background.runs import MAX_ATTEMPTS, BackgroundRuns, RunLimits
from agentship.server.protocols.responses.background.takeover import sweep
from agentship.server.protocols.responses.protocol import ResponsesProtocol
from agentship.server.protocols.responses.stored import StoredResponses
from agentship.server.protocols.responses.turn import ResponsesTurn
from agentship.state import StateSettings, StateStore
from agentship.state.settings import parse_url
from agentship.testing.processes import ServerProcess
from tests.serving.openai_types import valid_events

pytestmark = pytest.mark.e2e

TERMINAL = ("response.completed", "response.failed", "response.incomplete")


@pytest.fixture(scope="module")
def runner(serving_model_uri: str, scripted: ServerProcess) -> Iterator[ModelRunner]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_BASE_URL", scripted.url + "/v1")
        env.setenv("AGENTSHIP_STATE_URL", "none")  # the agent keeps no conversations here
        loaded = ModelRunner(serving_model_uri)
        yield loaded
        loaded.close()


@asynccontextmanager
async def background(runner: ModelRunner, db: Path, lease_s: float = 3.0) -> AsyncIterator[BackgroundRuns]:
    store = await StateStore.open(StateSettings(parse_url(f"sqlite+aiosqlite:///{db}")))
    runs = BackgroundRuns(store, runner, RunLimits(timeout_s=60, lease_s=lease_s, sweep_s=0.2))
    try:
        yield runs
    finally:
        await runs.close()
        await store.aclose()


async def submit(runs: BackgroundRuns, text: str) -> str:
    protocol = ResponsesProtocol("agent", StoredResponses(runs.store), runs)
    scope = {"type": "http", "method": "POST", "path": "/responses", "headers": [], "query_string": b""}
    reply = await protocol.open({"input": text, "background": True}, Request(scope))
    assert not isinstance(reply, ResponsesTurn)
    return str(httpx.Response(reply.status_code, content=reply.body).json()["id"])


async def log_of(runs: BackgroundRuns, response_id: str) -> list[dict[str, Any]]:
    return await runs.store.responses.events_after(response_id, -1, limit=10_000)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


def failing(
    method: Callable[..., Awaitable[Any]], times: int
) -> tuple[Callable[..., Awaitable[Any]], list[int]]:
    """``method`` that raises StateError on its first ``times`` calls; the calls, counted."""
    calls = [0]

    async def call(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            raise StateError("the state store is unavailable; retry later")
        return await method(*args, **kwargs)

    return call, calls


def assert_gap_free(events: list[dict[str, Any]], status: str) -> None:
    valid_events(events)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created"
    assert [e["type"] for e in events if e["type"] in TERMINAL] == [events[-1]["type"]]
    assert events[-1]["response"]["status"] == status


def test_a_refused_batch_is_written_again_in_its_place(runner: ModelRunner, tmp_path: Path) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], str, int]:
        async with background(runner, tmp_path / "s.db") as runs:
            runs.store.responses.append, calls = failing(runs.store.responses.append, 3)
            rid = await submit(runs, "What is the weather in Paris? [[chunks=8]]")
            await until(lambda: _ended(runs, rid), "the run never ended")
            return await log_of(runs, rid), (await runs.store.responses.get_any(rid)).status, calls[0]  # type: ignore[union-attr]

    events, status, calls = asyncio.run(scenario())
    assert calls > 3  # the store refused three writes, then took them
    assert_gap_free(events, "completed")
    assert status == "completed"


def test_a_store_down_past_the_lease_stops_the_run(runner: ModelRunner, tmp_path: Path) -> None:
    async def scenario() -> tuple[bool, list[dict[str, Any]]]:
        async with background(runner, tmp_path / "s.db", lease_s=1.0) as runs:
            runs.store.responses.append, _ = failing(runs.store.responses.append, 10**6)
            runs.store.responses.heartbeat, _ = failing(runs.store.responses.heartbeat, 10**6)
            rid = await submit(runs, "a long story [[latency=8 chunks=40]]")
            await until(lambda: _not_running(runs, rid), "the run went on without its store")
            return runs.runs(rid), await log_of(runs, rid)

    running, events = asyncio.run(scenario())
    assert not running
    assert [e["type"] for e in events] == [
        "response.created",
        "response.queued",
    ]  # written at submit, then nothing


def test_the_end_is_stored_before_a_follower_sees_it_and_a_failed_finish_is_not_run_again(
    runner: ModelRunner, tmp_path: Path, scripted: ServerProcess
) -> None:
    async def scenario() -> tuple[list[str], list[dict[str, Any]], int]:
        async with background(runner, tmp_path / "s.db") as runs:
            runs.store.responses.finish, calls = failing(runs.store.responses.finish, 2)
            rid = await submit(runs, "finish me [[chunks=4]]")
            statuses = []
            async for event in runs.follow(rid, -1):
                if event["type"] in TERMINAL:
                    rec = await runs.store.responses.get_any(rid)
                    statuses.append(rec.status if rec else "missing")
            return statuses, await log_of(runs, rid), calls[0]

    before = _model_calls(scripted, "finish me")
    statuses, events, finishes = asyncio.run(scenario())
    assert statuses == ["completed"]  # what the follower saw as the end was already stored
    assert finishes == 3
    assert_gap_free(events, "completed")
    assert _model_calls(scripted, "finish me") == before + 1  # written again, not run again


@pytest.mark.parametrize("broken", ["attempts", "record"])
def test_a_run_past_its_attempts_or_unreadable_ends_failed_once(
    runner: ModelRunner, tmp_path: Path, broken: str
) -> None:
    async def scenario() -> tuple[str, list[dict[str, Any]], int]:
        async with background(runner, tmp_path / "s.db") as runs:
            rid = await submit(runs, "never to run [[latency=30 chunks=30]]")
            await runs.close()  # this replica gives the run up, as if it had died
            rec = await runs.store.responses.get_any(rid)
            assert rec is not None
            if broken == "attempts":
                rec.attempt, rec.released = MAX_ATTEMPTS, 0  # replicas that died: one claim too many
            else:
                rec.request = {"input": 5}
            rec.owner, rec.lease_until = "a-dead-replica", 0.0
            await runs.store.responses.save(rec)
            claims, claim = [0], runs.store.responses.claim

            async def counted(*args: Any) -> Any:
                claims[0] += 1
                return await claim(*args)

            runs.store.responses.claim = counted  # type: ignore[method-assign]
            sweeper = asyncio.create_task(sweep(runs))
            await until(lambda: _ended(runs, rid), "the run was never ended")
            await asyncio.sleep(1.0)  # five more sweeps: nothing claims it again
            sweeper.cancel()
            ended = await runs.store.responses.get_any(rid)
            return ended.status, await log_of(runs, rid), claims[0]  # type: ignore[union-attr]

    status, events, claims = asyncio.run(scenario())
    assert status == "failed" and claims == 1
    assert_gap_free(events, "failed")
    message = (
        f"the run was attempted {MAX_ATTEMPTS} times, and each attempt's replica stopped first"
        if broken == "attempts"
        else "the stored run could not be read back"
    )
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": message}


async def _ended(runs: BackgroundRuns, response_id: str) -> bool:
    rec = await runs.store.responses.get_any(response_id)
    return rec is not None and rec.status in ("completed", "failed", "cancelled", "incomplete")


async def _not_running(runs: BackgroundRuns, response_id: str) -> bool:
    return not runs.runs(response_id)


def _model_calls(scripted: ServerProcess, text: str) -> int:
    recorded = httpx.get(f"{scripted.url}/scripted/requests", timeout=10).json()
    return sum(1 for r in recorded if any(text in m["text"] for m in r["messages"]))


async def _post(app: Any, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    """POST ``body`` to an ASGI app: the status, headers and JSON body it answered."""
    import json

    sent: list[dict[str, Any]] = []
    incoming = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/responses", "headers": [], "query_string": b""}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, json.loads(payload)


def test_a_background_submit_the_store_refuses_is_a_503_in_the_error_shape(
    runner: ModelRunner, tmp_path: Path
) -> None:
    from agentship.server.core.admission import Admission
    from agentship.server.http.endpoint import AgentEndpoint
    from agentship.server.services import Services
    from agentship.server.settings import ServerSettings

    async def scenario() -> tuple[int, dict[str, str], dict[str, Any], int]:
        async with background(runner, tmp_path / "s.db") as runs:
            runs.store.responses.save, _ = failing(runs.store.responses.save, 10**6)
            stored = StoredResponses(runs.store)
            services = Services(
                ServerSettings(model_uri="m"), runner, Admission(4, 1), runs.store, stored, runs
            )
            endpoint = AgentEndpoint(services, ResponsesProtocol("agent", stored, runs))
            status, headers, body = await _post(endpoint, {"input": "hi", "background": True})
            return status, headers, body, services.admission.in_flight

    status, headers, body, in_flight = asyncio.run(scenario())
    assert (status, headers["retry-after"], in_flight) == (503, "1", 0)
    assert body == {
        "error": {
            "message": "the state store is unavailable; retry later",
            "type": "server_error",
            "param": None,
            "code": "state_unavailable",
        }
    }
