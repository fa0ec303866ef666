"""`python -m serving --a2a` as A2A clients use it: the a2a-sdk's own client against a real server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest
from a2a.types.a2a_pb2 import CancelTaskRequest, GetTaskRequest, Part, TaskState
from google.protobuf.json_format import MessageToDict

from agentship.testing.postgres import PostgresServer
from agentship.testing.processes import ServerProcess
from tests.e2e.helpers import wait_for_traces
from tests.serving.a2a_helpers import (
    a2a_client,
    answer,
    final_task,
    first_task,
    rpc,
    send_request,
    timed_events,
    user_message,
)
from tests.serving.clients import marker
from tests.serving.conftest import TRACE_EXPERIMENT

pytestmark = pytest.mark.e2e

PARIS = "The get_weather tool returned: The weather in Paris is 18°C and sunny."


@pytest.fixture
def a2a(a2a_serving: ServerProcess) -> ServerProcess:
    return a2a_serving


def stats(scripted: ServerProcess) -> dict[str, int]:
    return dict(httpx.get(f"{scripted.url}/scripted/stats", timeout=10).json())


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_the_agent_card_describes_the_model(a2a: ServerProcess) -> None:
    card = httpx.get(f"{a2a.url}/.well-known/agent-card.json", timeout=10).json()
    assert card["name"] == "assistant"
    assert card["description"] == "The agent assistant, served by agentship."  # not its system prompt
    assert "concise" not in json.dumps(card)
    assert "securitySchemes" not in card and "securityRequirements" not in card  # no keys here
    assert {s["id"] for s in card["skills"]} == {"get_weather", "add", "travel_planner"}
    weather = next(s for s in card["skills"] if s["id"] == "get_weather")
    assert weather["description"] == "Get the current weather for a city."
    assert card["capabilities"]["streaming"] is True
    rpc_url = f"{a2a.url}/"
    assert {(i["url"], i["protocolVersion"]) for i in card["supportedInterfaces"]} == {
        (rpc_url, "1.0"),
        (rpc_url, "0.3"),
    }
    assert (card["url"], card["protocolVersion"], card["preferredTransport"]) == (rpc_url, "0.3", "JSONRPC")


def test_send_answers_with_the_tool_call_and_one_trace(a2a: ServerProcess) -> None:
    async def send() -> list:
        async with a2a_client(a2a.url, streaming=False) as client:
            return await timed_events(client, send_request("What is the weather in Paris?"))

    events = asyncio.run(send())
    assert len(events) == 1 and events[0][1].HasField("task")
    task = events[0][1].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert answer(task) == PARIS
    call, result = (MessageToDict(a.parts[0]) for a in task.artifacts[:2])
    assert call["data"] == {"id": call["data"]["id"], "name": "get_weather", "args": {"city": "Paris"}}
    assert call["metadata"] == {"kagent_type": "function_call"}
    assert result["data"]["response"] == {"result": "The weather in Paris is 18°C and sunny."}
    metadata = MessageToDict(task.metadata)
    assert metadata["agentship_usage"]["total_tokens"] > 0
    traces = wait_for_traces(TRACE_EXPERIMENT, lambda t: t.info.tags.get("a2a.task_id") == task.id)
    mine = [t for t in traces if t.info.tags.get("a2a.task_id") == task.id]
    assert len(mine) == 1 and mine[0].info.tags["a2a.context_id"] == task.context_id
    assert mine[0].info.trace_id == metadata["agentship_trace_id"]


def test_a_stream_arrives_incrementally(a2a: ServerProcess) -> None:
    async def stream() -> list:
        async with a2a_client(a2a.url) as client:
            return await timed_events(client, send_request("a story [[ttft=0.1 latency=2 chunks=10]]"))

    events = asyncio.run(stream())
    chunks = [(t, e.artifact_update) for t, e in events if e.HasField("artifact_update")]
    appended = [(t, u) for t, u in chunks if not u.last_chunk]
    assert len(appended) >= 5, "the text did not stream"
    assert appended[-1][0] - appended[0][0] > 1.0, "the chunks arrived together"
    last = chunks[-1][1]
    assert last.last_chunk and not last.append
    text = "".join(u.artifact.parts[0].text for _, u in appended)
    assert text == last.artifact.parts[0].text == "You said: a story"
    task = final_task(events)
    assert task.status.state == TaskState.TASK_STATE_COMPLETED and answer(task) == text


def test_one_context_id_continues_the_conversation(a2a: ServerProcess, scripted: ServerProcess) -> None:
    mark = marker()

    async def two_turns() -> tuple:
        async with a2a_client(a2a.url, streaming=False) as client:
            first = (await timed_events(client, send_request(f"What is the weather in Paris? {mark}")))[0]
            context_id = first[1].task.context_id
            second = await timed_events(client, send_request(f"Thanks {mark}-second", context_id))
            return first[1].task, second[0][1].task

    first, second = asyncio.run(two_turns())
    assert second.context_id == first.context_id and second.id != first.id
    assert answer(second) == f"You said: Thanks {mark}-second"
    recorded = httpx.get(f"{scripted.url}/scripted/requests", timeout=10).json()
    seen = next(
        e["messages"]
        for e in reversed(recorded)
        if any(m["role"] == "user" and f"{mark}-second" in m["text"] for m in e["messages"])
    )
    assert any(m["role"] == "user" and f"Paris? {mark}" in m["text"] for m in seen), seen
    assert any(m["role"] == "assistant" and m["text"] == PARIS for m in seen), seen


def test_cancel_task_cancels_the_backend_work(a2a: ServerProcess, scripted: ServerProcess) -> None:
    before = stats(scripted)["streams_cancelled"]

    async def cancel() -> tuple:
        async with a2a_client(a2a.url) as client, a2a_client(a2a.url, streaming=False) as other:
            request = send_request("long [[ttft=0.1 latency=20 chunks=40]]", return_immediately=True)
            started = await first_task(other, request)
            await asyncio.sleep(1.0)
            cancelled = await client.cancel_task(CancelTaskRequest(id=started.id))
            await asyncio.sleep(0.5)
            return cancelled, await client.get_task(GetTaskRequest(id=started.id))

    cancelled, stored = asyncio.run(cancel())
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    assert stored.status.state == TaskState.TASK_STATE_CANCELED
    wait_until(lambda: stats(scripted)["streams_cancelled"] > before, "the backend stream was not cancelled")


@pytest.mark.parametrize("method", ["SendStreamingMessage", "SendMessage"])
def test_a_client_that_disconnects_cancels_the_backend_work(
    a2a: ServerProcess, scripted: ServerProcess, method: str
) -> None:
    before = stats(scripted)["streams_cancelled"]
    message = MessageToDict(user_message("long [[ttft=0.1 latency=20 chunks=40]]"))
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": message}}
    headers = {"A2A-Version": "1.0"}
    if method == "SendMessage":  # the answer takes 20 s: give up waiting after 2
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{a2a.url}/", json=body, headers=headers, timeout=httpx.Timeout(30, read=2))
    else:
        with httpx.stream("POST", f"{a2a.url}/", json=body, headers=headers, timeout=30) as reply:
            for line in reply.iter_lines():
                if '"artifactUpdate"' in line:
                    break  # the answer is streaming: hang up
    wait_until(lambda: stats(scripted)["streams_cancelled"] > before, "the backend stream was not cancelled")
    task_id = message["messageId"]  # not the task id: find the task through ListTasks
    tasks = rpc(f"{a2a.url}/", "ListTasks", {})["result"]["tasks"]
    mine = next(t for t in tasks if t["history"][0]["messageId"] == task_id)
    wait_until(
        lambda: (
            rpc(f"{a2a.url}/", "GetTask", {"id": mine["id"]})["result"]["status"]["state"]
            == "TASK_STATE_CANCELED"
        ),
        "the task was not cancelled",
    )


def test_an_upstream_failure_is_a_failed_task_with_a_safe_message(
    a2a: ServerProcess, scripted: ServerProcess
) -> None:
    async def send() -> list:
        async with a2a_client(a2a.url, streaming=False) as client:
            return await timed_events(client, send_request("boom [[fail=500]]"))

    task = asyncio.run(send())[0][1].task
    assert task.status.state == TaskState.TASK_STATE_FAILED
    message = MessageToDict(task.status.message)
    assert message["parts"][0]["text"] == "the model backend failed (HTTP 500)"
    assert message["metadata"] == {"error_code": "upstream_error", "error_status": 502}
    assert scripted.url.split("//")[1] not in str(MessageToDict(task))


def test_protocol_0_3_method_names_are_served(a2a: ServerProcess) -> None:
    async def send() -> tuple:
        async with a2a_client(a2a.url, streaming=False, version="0.3") as client:
            sent = await timed_events(client, send_request("What is the weather in Paris?"))
        async with a2a_client(a2a.url, version="0.3") as client:
            streamed = await timed_events(client, send_request("hello [[chunks=4]]"))
        return sent[0][1].task, final_task(streamed)

    sent, streamed = asyncio.run(send())
    assert answer(sent) == PARIS and answer(streamed) == "You said: hello"
    raw = rpc(
        f"{a2a.url}/",
        "message/send",
        {
            "message": {
                "kind": "message",
                "role": "user",
                "messageId": "m-03",
                "parts": [{"kind": "text", "text": "hi"}],
            }
        },
        version="0.3",
    )
    assert raw["result"]["kind"] == "task" and raw["result"]["status"]["state"] == "completed"
    fetched = rpc(f"{a2a.url}/", "tasks/get", {"id": raw["result"]["id"]}, version="0.3")
    assert fetched["result"]["artifacts"][-1]["parts"][0]["text"] == "You said: hi"


def test_bad_input_gets_the_json_rpc_error_code(a2a: ServerProcess) -> None:
    url = f"{a2a.url}/"
    headers = {"A2A-Version": "1.0", "content-type": "application/json"}
    assert httpx.post(url, content=b"{not json", headers=headers).json()["error"]["code"] == -32700
    assert rpc(url, "NoSuchMethod", {})["error"]["code"] == -32601
    assert rpc(url, "SendMessage", {"message": {"parts": "nope"}})["error"]["code"] == -32602
    empty = MessageToDict(user_message("   "))
    assert rpc(url, "SendMessage", {"message": empty})["error"]["code"] == -32602
    file_part = MessageToDict(user_message("see"))
    file_part["parts"].append(MessageToDict(Part(url="https://example.invalid/a.png")))
    assert rpc(url, "SendMessage", {"message": file_part})["error"]["code"] == -32005
    assert rpc(url, "GetTask", {"id": "no-such-task"})["error"]["code"] == -32001
    deep = b'{"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": ' + b"[" * 100 + b"]" * 100 + b"}"
    assert httpx.post(url, content=deep, headers=headers).json()["error"]["code"] == -32700
    huge = httpx.post(url, content=b"x" * 2_000_000, headers=headers)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == -32600


def test_admission_limits_apply(start_serving: Callable[..., ServerProcess], scripted: ServerProcess) -> None:
    server = start_serving(scripted.url + "/v1", "--a2a", "--max-concurrency", "1", name="serving-a2a-one")

    async def busy() -> tuple:
        async with a2a_client(server.url, streaming=False) as client:
            request = send_request("slow [[ttft=0.1 latency=3 chunks=3]]", return_immediately=True)
            started = await first_task(client, request)
            refused = httpx.post(f"{server.url}/", json={"jsonrpc": "2.0", "id": 1, "method": "GetTask"})
            await asyncio.sleep(4)
            done = await client.get_task(GetTaskRequest(id=started.id))
            return refused, done

    refused, done = asyncio.run(busy())
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["data"]["code"] == "server_busy"
    assert done.status.state == TaskState.TASK_STATE_COMPLETED


def test_any_replica_answers_for_a_task(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess, postgres: PostgresServer
) -> None:
    """Tasks live in the state store: a task run on one replica is read, listed and cancelled
    through another, and only by its user."""
    url = postgres.url(postgres.create_database())
    a, b = (
        start_serving(scripted.url + "/v1", "--a2a", "--state-url", url, name=f"serving-a2a-{n}")
        for n in "ab"
    )
    alice, bob = {"x-user-id": "alice"}, {"x-user-id": "bob"}
    message = MessageToDict(user_message(f"on replica a {marker()}"))
    sent = httpx.post(
        f"{a.url}/",
        json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}},
        headers={"A2A-Version": "1.0", **alice},
        timeout=60,
    ).json()["result"]["task"]
    assert sent["status"]["state"] == "TASK_STATE_COMPLETED"

    def call(server: ServerProcess, method: str, params: dict, headers: dict[str, str]) -> dict:
        body = {"jsonrpc": "2.0", "id": 2, "method": method, "params": params}
        return dict(
            httpx.post(
                f"{server.url}/", json=body, headers={"A2A-Version": "1.0", **headers}, timeout=30
            ).json()
        )

    fetched = call(b, "GetTask", {"id": sent["id"]}, alice)["result"]
    assert (fetched["id"], fetched["contextId"], fetched["status"]["state"]) == (
        sent["id"],
        sent["contextId"],
        "TASK_STATE_COMPLETED",
    )
    assert fetched["artifacts"] == sent["artifacts"]
    assert call(b, "GetTask", {"id": sent["id"]}, bob)["error"]["code"] == -32001
    listed = call(b, "ListTasks", {}, alice)["result"]
    assert [t["id"] for t in listed["tasks"]] == [sent["id"]]
    assert call(b, "ListTasks", {}, bob)["result"].get("tasks", []) == []
    too_long = MessageToDict(user_message("hi", context_id="c" * 37))
    refused = call(a, "SendMessage", {"message": too_long}, alice)
    assert refused["error"]["code"] == -32602
    assert refused["error"]["message"] == "'message.contextId' must be at most 36 characters"
