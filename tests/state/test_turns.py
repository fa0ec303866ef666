"""A conversation's turn is all or nothing: the OpenAI Agents SDK backend with the real runner,
in front of the scripted model server (a process on loopback), over a real SQLite file and a
real PostgreSQL (issue 20, items 4-7).

The SDK saves a turn's input into the session before its first model call; whatever ends the
turn early (a model failure, a tripped guardrail, the client going away, a lost lease) must
leave the session as it was, and a kept turn must stand whatever happens after it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.types.responses import ResponsesAgentRequest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, event, select

from agentship.errors import BackendStatusError, GuardrailTriggeredError, InvalidRequestError, StateError
from agentship.events import AgentEvent, Completed, ItemDone, TextDelta
from agentship.openai_agents import OpenAIAgentsBackend, memory, parse_config
from agentship.state import StateStore, conversation_key
from agentship.state.engine import transaction
from agentship.state.locks import LeaseLocks
from agentship.state.schema import agent_messages, locks
from agentship.testing.processes import ServerProcess, start_scripted_llm
from tests.state.test_store import settings

CONFIG = {
    "name": "assistant",
    "instructions": "Be brief.",
    "model": "scripted-model",
    "api": "chat_completions",
    "tracing": False,
    "max_retries": 0,
    "request_timeout_s": 60,
    "tools": ["agentship.examples.tools:get_weather", "agentship.examples.tools:send_email"],
    "needs_approval": ["send_email"],
    "input_guardrails": ["agentship.examples.guardrails:no_passwords"],
}


@pytest.fixture(scope="module")
def model(log_dir: Path) -> Any:
    """This module's own scripted model: some tests switch its default behaviour (failing)."""
    server = start_scripted_llm(log_dir)
    yield server
    server.stop()


def set_model(model: ServerProcess, **behaviour: Any) -> None:
    httpx.post(f"{model.url}/scripted/config", json=behaviour, timeout=10).raise_for_status()


def mark() -> str:
    return uuid.uuid4().hex[:10]


@asynccontextmanager
async def backend(state_url: str, model: ServerProcess, **env: str) -> AsyncIterator[OpenAIAgentsBackend]:
    """A replica's agent backend: its own store engine, as under ``python -m serving``."""
    environ = {
        "OPENAI_BASE_URL": model.url + "/v1",
        "OPENAI_API_KEY": "unused",
        "AGENTSHIP_STATE_URL": state_url,
    }
    agent = OpenAIAgentsBackend(parse_config(dict(CONFIG)), {**environ, **env})
    await agent.start()
    try:
        yield agent
    finally:
        await agent.aclose()


def request(conversation: str, *items: dict[str, Any] | str) -> ResponsesAgentRequest:
    turn = [{"role": "user", "content": i} if isinstance(i, str) else i for i in items]
    return ResponsesAgentRequest(input=turn, context={"conversation_id": conversation, "user_id": "alice"})


async def ask(
    agent: OpenAIAgentsBackend, conversation: str, *items: dict[str, Any] | str, deltas: bool = False
) -> list[AgentEvent]:
    return [event async for event in agent.stream(request(conversation, *items), deltas=deltas)]


async def session(state_url: str, conversation: str) -> list[dict[str, Any]]:
    """The conversation's SDK session as stored, read by another engine."""
    store = await StateStore.open(settings(state_url), migrate=False)
    try:
        async with transaction(store.engine) as conn:
            rows = await conn.execute(
                select(agent_messages.c.message_data)
                .where(agent_messages.c.session_id == conversation_key("alice", conversation))
                .order_by(agent_messages.c.id)
            )
            return [json.loads(row.message_data) for row in rows]
    finally:
        await store.aclose()


async def lease_rows(state_url: str) -> list[tuple[str, str]]:
    store = await StateStore.open(settings(state_url), migrate=False)
    try:
        async with transaction(store.engine) as conn:
            return [(r.key, r.owner) for r in await conn.execute(select(locks.c.key, locks.c.owner))]
    finally:
        await store.aclose()


def model_users(model: ServerProcess, needle: str) -> list[list[str]]:
    """The user messages of every model request whose latest user message contains ``needle``."""
    seen = []
    for entry in httpx.get(f"{model.url}/scripted/requests", timeout=10).json():
        users = [m["text"] for m in entry["messages"] if m["role"] == "user"]
        if users and needle in users[-1]:
            seen.append(users)
    return seen


def answer_text(events: list[AgentEvent]) -> str:
    done = events[-1]
    assert isinstance(done, Completed)
    return str(done.output[-1]["content"][0]["text"])


def test_a_failed_turn_leaves_nothing_and_its_retry_is_recorded_once(
    state_url: str, model: ServerProcess, deltas: bool
) -> None:
    m = mark()

    async def check() -> None:
        async with backend(state_url, model) as agent:
            await ask(agent, m, f"hello {m}", deltas=deltas)
            before = await session(state_url, m)
            with pytest.raises(BackendStatusError):
                await ask(agent, m, f"again {m} [[fail=400*1]]", deltas=deltas)
            assert await session(state_url, m) == before
            retried = await ask(agent, m, f"again {m} [[fail=400*1]]", deltas=deltas)  # the client's retry
            assert answer_text(retried) == f"You said: again {m}"
            after = await session(state_url, m)
            assert after[: len(before)] == before and len(after) == len(before) + 2
            assert after[len(before)] == {"role": "user", "content": f"again {m} [[fail=400*1]]"}
            assert after[-1]["content"][0]["text"] == f"You said: again {m}"

    asyncio.run(check())
    # the retry's model call saw the conversation with the turn once
    assert model_users(model, f"again {m}")[-1] == [f"hello {m}", f"again {m} [[fail=400*1]]"]


@pytest.fixture(params=[False, True], ids=["whole", "streamed"])
def deltas(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_a_tripped_input_guardrail_keeps_nothing_of_the_blocked_input(
    state_url: str, model: ServerProcess
) -> None:
    """Before: the password stayed in the session; every later turn sent it to the model, and
    tripped the guardrail again."""
    m = mark()

    async def check() -> list[AgentEvent]:
        async with backend(state_url, model) as agent:
            await ask(agent, m, f"hello {m}")
            before = await session(state_url, m)
            with pytest.raises(GuardrailTriggeredError, match="no_passwords"):
                await ask(agent, m, f"my password is hunter2 {m}", deltas=True)
            assert await session(state_url, m) == before
            return await ask(agent, m, f"What is the weather in Paris? {m}-next")

    events = asyncio.run(check())
    assert answer_text(events) == "The get_weather tool returned: The weather in Paris is 18°C and sunny."
    for users in model_users(model, f"{m}-next"):
        assert users == [f"hello {m}", f"What is the weather in Paris? {m}-next"]


def test_a_cancelled_turn_leaves_nothing_and_lets_the_conversation_go(
    state_url: str, model: ServerProcess
) -> None:
    m = mark()

    async def check() -> None:
        async with backend(state_url, model) as agent:
            await ask(agent, m, f"hello {m}")
            before = await session(state_url, m)
            streaming = asyncio.Event()

            async def client() -> None:  # goes away once the answer has started to stream
                async for event in agent.stream(request(m, f"slow {m} [[latency=30 chunks=30]]")):
                    if isinstance(event, TextDelta):
                        streaming.set()

            task = asyncio.create_task(client())
            async with asyncio.timeout(30):
                await streaming.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await session(state_url, m) == before
            assert await lease_rows(state_url) == []  # let go: the next turn need not wait

    asyncio.run(check())


def test_a_turn_that_loses_its_lease_stops_and_keeps_nothing(
    state_url: str, model: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: one failed renewal ended the keeper, the turn ran on past its lease (another
    replica could run a turn of the conversation beside it), and its input stayed."""
    m = mark()

    async def unreachable(self: LeaseLocks, key: str) -> bool:
        raise StateError("the state store is unavailable; retry later")

    async def check() -> None:
        async with backend(state_url, model, AGENTSHIP_STATE_LEASE_S="6") as agent:
            await ask(agent, m, f"hello {m}")
            before = await session(state_url, m)
            with monkeypatch.context() as patch:
                patch.setattr(LeaseLocks, "renew", unreachable)
                with pytest.raises(StateError, match="lease was lost while its turn ran"):
                    async with asyncio.timeout(60):
                        await ask(agent, m, f"long {m} [[latency=20 chunks=20]]", deltas=True)
            assert await session(state_url, m) == before
            assert await lease_rows(state_url) == []
            after = await ask(agent, m, f"after {m}")
            assert answer_text(after) == f"You said: after {m}"

    asyncio.run(check())
    assert model_users(model, f"after {m}") == [[f"hello {m}", f"after {m}"]]


def test_a_conversation_is_kept_to_the_item_limit_turn_by_turn(state_url: str, model: ServerProcess) -> None:
    """A turn that takes the session past its limit trims it to the newest whole turns; below the
    limit nothing is trimmed (a turn then skips the trim's count, knowing the size from its read)."""
    m = mark()

    async def check() -> None:
        async with backend(state_url, model, AGENTSHIP_STATE_MAX_ITEMS="4") as agent:
            for word in ("one", "two"):
                await ask(agent, m, f"{word} {m}")
            assert [item.get("content") for item in await session(state_url, m)][::2] == [
                f"one {m}",
                f"two {m}",
            ]
            await ask(agent, m, f"three {m}")
            stored = await session(state_url, m)
            assert [item.get("content") for item in stored][::2] == [f"two {m}", f"three {m}"]
            assert [item["content"][0]["text"] for item in stored[1::2]] == [
                f"You said: two {m}",
                f"You said: three {m}",
            ]

    asyncio.run(check())


def test_a_trim_that_fails_keeps_the_turn(
    state_url: str, model: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the failed trim failed the request after the turn was kept; the client's retry
    recorded the turn twice."""
    m = mark()

    async def broken_trim(*_: Any) -> int:
        raise StateError("the state store is unavailable; retry later")

    failures = REGISTRY.get_sample_value("agentship_state_trim_failures_total") or 0.0

    async def check() -> None:
        # A trim runs when a turn takes the session past its limit: here 2 items, the first turn's.
        async with backend(state_url, model, AGENTSHIP_STATE_MAX_ITEMS="2") as agent:
            await ask(agent, m, f"first {m}")
            monkeypatch.setattr("agentship.state.store.trim_session", broken_trim)
            events = await ask(agent, m, f"keep me {m}")
            assert answer_text(events) == f"You said: keep me {m}"
            stored = await session(state_url, m)
            assert [item.get("content") for item in stored][::2] == [f"first {m}", f"keep me {m}"]
            assert len(stored) == 4 and stored[3]["content"][0]["text"] == f"You said: keep me {m}"

    asyncio.run(check())
    assert REGISTRY.get_sample_value("agentship_state_trim_failures_total") == failures + 1


def test_an_approval_whose_resumed_run_fails_can_be_answered_again_and_only_once(
    state_url: str, model: ServerProcess
) -> None:
    """Before: the paused run was forgotten before the resumed run ran; when that failed, the
    client's retry was refused ("no paused run") and the approval was lost."""
    m = mark()

    async def check() -> tuple[list[AgentEvent], list[dict[str, Any]]]:
        async with backend(state_url, model) as agent:
            paused = await ask(agent, m, f"Please send email to Bob {m}")
            ask_item = next(e.item for e in paused if isinstance(e, ItemDone))
            assert (ask_item["type"], ask_item["name"]) == ("mcp_approval_request", "send_email")
            answer = {"type": "mcp_approval_response", "approval_request_id": ask_item["id"], "approve": True}
            before = await session(state_url, m)
            set_model(model, fail=503)
            try:
                with pytest.raises(BackendStatusError):
                    await ask(agent, m, answer)
            finally:
                set_model(model, fail=None)
            assert await session(state_url, m) == before
            resumed = await ask(agent, m, answer)  # the client's retry
            with pytest.raises(InvalidRequestError, match="answered already"):
                await ask(agent, m, answer)
            return resumed, await session(state_url, m)

    resumed, stored = asyncio.run(check())
    assert answer_text(resumed) == "The send_email tool returned: Email sent to Bob."
    outputs = [item for item in stored if item.get("type") == "function_call_output"]
    assert [o["output"] for o in outputs] == ["Email sent to Bob."]  # once, though the tool ran twice


@pytest.mark.parametrize("landed", [True, False], ids=["commit-landed", "commit-lost"])
def test_a_turn_whose_commit_answer_is_lost_is_kept_once_and_reported_kept(
    state_url: str, model: ServerProcess, monkeypatch: pytest.MonkeyPatch, landed: bool
) -> None:
    """The store goes away during the turn's commit, so the replica never hears its answer.
    Before: the turn was answered 503 whether or not the commit landed; when it had, the client's
    retry (as the fault campaign's clients do) recorded the turn twice. Now the replica asks the
    store which, tries the commit again if it did not land, and answers the turn."""
    m = mark()
    real_keep = memory.keep_turn
    calls: list[str] = []

    async def keep_without_answer(leases: LeaseLocks, key: str, *until: float | None) -> None:
        calls.append(key)
        if len(calls) == 1:
            if landed:
                await real_keep(leases, key, *until)
            raise StateError("the state store is unavailable; retry later")
        await real_keep(leases, key, *until)

    async def check() -> None:
        async with backend(state_url, model) as agent:
            monkeypatch.setattr(memory, "keep_turn", keep_without_answer)
            events = await ask(agent, m, f"keep me {m}")
            assert answer_text(events) == f"You said: keep me {m}"
            stored = await session(state_url, m)
            assert stored[0] == {"role": "user", "content": f"keep me {m}"} and len(stored) == 2
            assert stored[1]["content"][0]["text"] == f"You said: keep me {m}"
            assert [key for key, _ in await lease_rows(state_url)].count(conversation_key("alice", m)) == 0
            # the conversation goes on, from the one kept turn
            monkeypatch.setattr(memory, "keep_turn", real_keep)
            await ask(agent, m, f"again {m}")
            assert [item.get("content") for item in await session(state_url, m)][::2] == [
                f"keep me {m}",
                f"again {m}",
            ]

    asyncio.run(check())
    assert calls.count(calls[0]) == (1 if landed else 2)


@pytest.mark.parametrize("landed", [True, False], ids=["write-landed", "write-lost"])
def test_a_turn_whose_write_fails_as_it_is_kept_is_reported_failed_and_its_retry_recorded_once(
    state_url: str, model: ServerProcess, monkeypatch: pytest.MonkeyPatch, landed: bool
) -> None:
    """The store goes away as the turn writes the items it held, whether or not the write landed:
    the turn is answered 503, its lease keeps its mark until it runs out, and the client's retry
    (which waits for it) takes whatever landed back before it runs: the conversation records the
    turn once."""
    m = mark()
    real_append = memory.append_items
    written: list[list[str]] = []

    async def append_without_answer(leases: LeaseLocks, key: str, data: list[str]) -> list[int]:
        written.append([json.loads(raw).get("role") for raw in data])
        if len(written) == 1:
            if landed:
                await real_append(leases, key, data)
            raise StateError("the state store is unavailable; retry later")
        return await real_append(leases, key, data)

    async def check() -> None:
        async with backend(state_url, model, AGENTSHIP_STATE_LEASE_S="4") as agent:
            await ask(agent, m, f"hello {m}")
            before = await session(state_url, m)
            monkeypatch.setattr(memory, "append_items", append_without_answer)
            with pytest.raises(StateError, match="state store is unavailable"):
                await ask(agent, m, f"again {m}")
            marked = (await session(state_url, m))[len(before) :]
            assert [item.get("role") for item in marked] == (["user", "assistant"] if landed else [])
            retried = await ask(agent, m, f"again {m}")  # the client's retry, on the same replica
            assert answer_text(retried) == f"You said: again {m}"
            after = await session(state_url, m)
            assert after[: len(before)] == before and len(after) == len(before) + 2
            assert after[len(before)] == {"role": "user", "content": f"again {m}"}
            assert after[-1]["content"][0]["text"] == f"You said: again {m}"
            assert await lease_rows(state_url) == []

    asyncio.run(check())
    assert written == [["user", "assistant"], ["user", "assistant"]]
    assert model_users(model, f"again {m}")[-1] == [f"hello {m}", f"again {m}"]


def test_a_turns_items_are_written_in_one_statement_as_it_is_kept(
    state_url: str, model: ServerProcess
) -> None:
    """The SDK adds a tool turn's items in three steps (its input, the tool call with its output,
    the answer). The session holds them while the turn runs, and writes them in one statement as
    it is kept. Before: a fenced write at each step, and half a turn in the session's table while
    it ran."""
    m = mark()
    question = f"What is the weather in Paris? {m}"
    writes: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "INSERT INTO agent_messages" in statement:
            writes.append(statement)

    async def check() -> None:
        async with backend(state_url, model) as agent:
            await ask(agent, m, f"hello {m}")
            before = await session(state_url, m)
            during: list[list[dict[str, Any]]] = []
            event.listen(Engine, "before_cursor_execute", seen)
            try:
                async for done in agent.stream(request(m, question), deltas=True):
                    if isinstance(done, ItemDone) and done.item["type"] == "function_call_output":
                        during.append(await session(state_url, m))
            finally:
                event.remove(Engine, "before_cursor_execute", seen)
            assert during == [before]  # the tool has run: the turn's input and call are held
            after = await session(state_url, m)
            assert after[: len(before)] == before
            asked, call, output, answer = after[len(before) :]
            assert asked == {"role": "user", "content": question}
            calls = call["provider_data"]["response_id"], answer["provider_data"]["response_id"]
            assert isinstance(calls[0], str) and isinstance(calls[1], str) and calls[0] != calls[1]
            assert call == {
                "type": "function_call",
                "id": "__fake_id__",
                "call_id": call["call_id"],
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
                "provider_data": {"model": "scripted-model", "response_id": calls[0]},
            }
            assert output == {
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": "The weather in Paris is 18°C and sunny.",
            }
            assert answer == {
                "type": "message",
                "id": "__fake_id__",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {
                        "type": "output_text",
                        "text": "The get_weather tool returned: The weather in Paris is 18°C and sunny.",
                        "annotations": [],
                        "logprobs": [],
                    }
                ],
                "provider_data": {"model": "scripted-model", "response_id": calls[1]},
            }
            assert len(writes) == 1, writes

    asyncio.run(check())


def test_a_read_during_a_turn_sees_what_the_turn_holds(state_url: str) -> None:
    """A read of the session during its turn (the SDK's rewind reads, then pops) writes what the
    turn holds first; a turn that fails drops what it held, and what it wrote is taken back."""
    m = mark()

    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        memory_ = memory.ConversationMemory(store)
        try:
            async with memory_.turn("alice", m) as held:
                await held.add_items([{"role": "user", "content": "one"}])
                assert await session(state_url, m) == []  # held
                assert await held.get_items() == [{"role": "user", "content": "one"}]
                assert await session(state_url, m) == [
                    {"role": "user", "content": "one"}
                ]  # written, to be read
                await held.add_items(
                    [{"role": "user", "content": "two"}, {"role": "user", "content": "three"}]
                )
                assert await held.pop_item() == {"role": "user", "content": "three"}
                await held.add_items([{"role": "user", "content": "four"}])
            assert await session(state_url, m) == [
                {"role": "user", "content": "one"},
                {"role": "user", "content": "two"},
                {"role": "user", "content": "four"},
            ]
            with pytest.raises(RuntimeError, match="the run failed"):
                async with memory_.turn("alice", m) as failing:
                    await failing.add_items([{"role": "user", "content": "five"}])
                    assert len(await failing.get_items()) == 4  # written, to be read
                    await failing.add_items([{"role": "user", "content": "six"}])
                    raise RuntimeError("the run failed")
            assert [item["content"] for item in await session(state_url, m)] == ["one", "two", "four"]
            assert await lease_rows(state_url) == []
        finally:
            await store.aclose()

    asyncio.run(check())
