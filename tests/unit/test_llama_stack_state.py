"""The Llama Stack backend's HTTP retry policy and its conversation map, without a server: a
socket on loopback that drops every request, httpx2's mock transport, and a fake clock."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from agentship.errors import BackendStatusError, BackendUnavailableError
from agentship.llama_stack.conversations import ConversationState, InMemoryConversationMap
from agentship.llama_stack.http import ServerHTTP


async def _dropping_server() -> tuple[asyncio.Server, list[bytes]]:
    """A server on loopback that reads each request, then closes without answering."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), seen


@pytest.mark.parametrize(("method", "sent"), [("post", 1), ("get", 3)])
def test_a_request_that_reached_the_server_is_retried_only_if_idempotent(method: str, sent: int) -> None:
    async def run() -> int:
        server, seen = await _dropping_server()
        port = server.sockets[0].getsockname()[1]
        http = ServerHTTP(f"http://127.0.0.1:{port}", None, timeout_s=5, max_retries=2)
        try:
            with pytest.raises(BackendUnavailableError, match="unreachable"):
                if method == "post":  # creating a turn: sending it twice could run it twice
                    await http.post("/v1/agents/a/session/s/turn", {"messages": []})
                else:
                    await http.get("/v1/models")
        finally:
            await http.aclose()
            server.close()
        return len(seen)

    assert asyncio.run(run()) == sent  # before the fix: 3 POSTs


def _mock(statuses: list[int | type[Exception]]) -> tuple[httpx2.MockTransport, list[str]]:
    calls: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request.method)
        outcome = statuses[min(len(calls), len(statuses)) - 1]
        if isinstance(outcome, int):
            return httpx2.Response(outcome, json={"ok": outcome < 400})
        raise outcome("scripted", request=request)

    return httpx2.MockTransport(handler), calls


def _call(transport: httpx2.MockTransport, method: str) -> object:
    async def run() -> object:
        http = ServerHTTP("http://ls.test", None, timeout_s=5, max_retries=2, transport=transport)
        try:
            return await (http.post("/v1/x", {}) if method == "post" else http.get("/v1/x"))
        finally:
            await http.aclose()

    return asyncio.run(run())


def test_a_connection_that_never_opened_is_retried_for_a_post_too() -> None:
    transport, calls = _mock([httpx2.ConnectError, httpx2.ConnectError, 200])
    assert _call(transport, "post") == {"ok": True}
    assert calls == ["POST"] * 3


@pytest.mark.parametrize(("method", "expected"), [("post", 1), ("get", 3)])
def test_busy_statuses_are_retried_only_if_idempotent(method: str, expected: int) -> None:
    transport, calls = _mock([503])
    with pytest.raises(BackendStatusError) as info:
        _call(transport, method)
    assert info.value.status == 503 and len(calls) == expected


def _map(clock: list[float], released: list[str | None], size: int = 1) -> InMemoryConversationMap:
    async def release(state: ConversationState) -> None:
        released.append(state.server_id)

    return InMemoryConversationMap(size, ttl_s=10, release=release, clock=lambda: clock[0])


async def _turn(conversations: InMemoryConversationMap, key: str, hold: asyncio.Event | None = None) -> None:
    async with conversations.lock(key):
        if hold is not None:
            await hold.wait()
        await conversations.set(key, ConversationState(server_id=f"session-{key}"))


def test_a_conversation_whose_turn_runs_is_not_evicted() -> None:
    async def run() -> list[str | None]:
        released: list[str | None] = []
        conversations = _map([0.0], released)
        await _turn(conversations, "a")
        hold = asyncio.Event()
        running = asyncio.create_task(_turn(conversations, "a", hold))  # "a" is mid-turn ...
        await asyncio.sleep(0)
        await _turn(conversations, "b")  # ... while "b" needs the only slot
        assert released == ["session-b"]  # the map is over its bound: the idle one goes, not "a"
        assert await conversations.get("a") == ConversationState(server_id="session-a")
        hold.set()
        await running
        return released

    assert asyncio.run(run()) == ["session-b"]  # before the fix: "a" was dropped mid-turn


def test_idle_conversations_expire_and_close_releases_the_rest() -> None:
    async def run() -> tuple[list[str | None], list[str | None]]:
        clock, released = [0.0], []
        conversations = _map(clock, released, size=10)
        await _turn(conversations, "old")
        clock[0] = 100.0
        await _turn(conversations, "new")
        expired = list(released)
        await conversations.aclose()
        return expired, released

    expired, released = asyncio.run(run())
    assert expired == ["session-old"] and released == ["session-old", "session-new"]


def test_state_is_only_what_a_turn_set() -> None:
    async def run() -> ConversationState | None:
        conversations = _map([0.0], [])
        with pytest.raises(RuntimeError):
            async with conversations.lock("x"):
                raise RuntimeError("the turn failed")
        return await conversations.get("x")

    assert asyncio.run(run()) is None
