"""`python -m serving` as a real process on loopback, in front of the scripted model."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env
from tests.e2e.helpers import wait_for_traces
from tests.serving.conftest import TRACE_EXPERIMENT

pytestmark = pytest.mark.e2e


def sse_events(server: ServerProcess, path: str, body: dict) -> list[tuple[float, str]]:
    """(arrival time, data) of each SSE event, read as it arrives."""
    started = time.monotonic()
    out = []
    with httpx.stream("POST", f"{server.url}{path}", json=body, timeout=60) as reply:
        assert reply.status_code == 200, reply.read()
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line.startswith("data:"):
                out.append((time.monotonic() - started, line[5:].strip()))
    return out


def test_health_ready_and_version(serving: ServerProcess) -> None:
    assert httpx.get(f"{serving.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{serving.url}/ready").json()
    assert ready["status"] == "ready" and ready["model_uri"] == "models:/serving-agent@live"
    assert httpx.get(f"{serving.url}/version").json()["runner"] == "native-async"


def test_invocations_without_stream_matches_mlflow_serve(serving: ServerProcess) -> None:
    reply = httpx.post(
        f"{serving.url}/invocations",
        json={"input": [{"role": "user", "content": "What is the weather in Paris?"}]},
        timeout=60,
    )
    assert reply.status_code == 200
    body = reply.json()
    assert [o["type"] for o in body["output"]] == ["function_call", "function_call_output", "message"]
    assert body["usage"]["total_tokens"] > 0


def test_invocations_stream_arrives_incrementally(serving: ServerProcess) -> None:
    body = {
        "input": [{"role": "user", "content": "a story [[ttft=0.1 latency=2 chunks=10]]"}],
        "stream": True,
    }
    events = sse_events(serving, "/invocations", body)
    assert events[-1][1] == "[DONE]"
    parsed = [json.loads(data) for _, data in events[:-1]]
    deltas = [
        t for (t, _), e in zip(events, parsed, strict=False) if e["type"] == "response.output_text.delta"
    ]
    assert len(deltas) == 10
    total = events[-1][0]
    assert total >= 2.0
    # The model paces its chunks about 0.15 s apart: streamed, the deltas arrive over more than a
    # second; buffered, together. Load only widens the gaps; the server's start-up does not count.
    spread = deltas[-1] - deltas[0]
    assert spread >= 0.6, f"the deltas arrived within {spread:.2f}s of each other: not streamed"
    assert parsed[-1]["type"] == "response.completed"


def test_official_openai_client_against_responses(serving: ServerProcess) -> None:
    client = openai.OpenAI(base_url=serving.url, api_key="unused", max_retries=0)
    reply = client.responses.create(model="agent", input="What is the weather in Tokyo?")
    assert reply.output_text == "The get_weather tool returned: The weather in Tokyo is 22°C and clear."
    assert [o.type for o in reply.output] == ["mcp_call", "message"]  # the server ran the tool
    assert reply.usage is not None and reply.usage.total_tokens > 0
    with client.responses.stream(model="agent", input="stream me [[chunks=5]]") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert len(deltas) == 5 and "".join(deltas) == final.output_text == "You said: stream me"


def test_many_slow_requests_run_concurrently(serving: ServerProcess) -> None:
    async def burst() -> tuple[list[int], float]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as client:
            started = time.monotonic()
            replies = await asyncio.gather(
                *[
                    client.post(
                        f"{serving.url}/invocations",
                        json={"input": [{"role": "user", "content": f"req {i} [[latency=1]]"}]},
                    )
                    for i in range(100)
                ]
            )
            return [r.status_code for r in replies], time.monotonic() - started

    statuses, elapsed = asyncio.run(burst())
    assert statuses == [200] * 100
    assert elapsed < 15, f"100 requests against a 1 s backend took {elapsed:.1f}s: they ran serially"


@pytest.mark.parametrize(
    ("content", "headers", "problem"),
    [
        (b"{not json", {}, "not valid JSON"),
        (b"", {}, "the request body is empty"),
        (b'{"input": []}', {}, "'input' must contain at least one item"),
        (b'{"input": [{"role": "robot", "content": "hi"}]}', {}, "Invalid role: robot"),
        (b'{"input": [{"type": "teleport"}]}', {}, "input[0]"),
        (b"[1, 2]", {}, "must be a JSON object"),
        (b'{"input": "\xff\xfe"}', {}, "not valid UTF-8"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(
    serving: ServerProcess, content: bytes, headers: dict, problem: str
) -> None:
    for path in ("/invocations", "/responses"):
        reply = httpx.post(
            f"{serving.url}{path}", content=content, headers={"content-type": "application/json", **headers}
        )
        assert reply.status_code == 400, (path, reply.text)
        error = reply.json()["error"]
        assert error["type"] == "invalid_request_error" and problem in error["message"]
        assert "Traceback" not in reply.text
    assert (
        httpx.post(f"{serving.url}/invocations", json={"input": "still serving?"}, timeout=30).status_code
        == 200
    )


def test_oversized_body_is_rejected(serving: ServerProcess) -> None:
    reply = httpx.post(f"{serving.url}/invocations", json={"input": "x" * 2_000_000})
    assert reply.status_code == 413
    assert "larger than the limit of 1048576 bytes" in reply.json()["error"]["message"]


def test_large_unicode_input_is_fine(serving: ServerProcess) -> None:
    text = "こんにちは🌍 " * 5000
    reply = httpx.post(f"{serving.url}/invocations", json={"input": text}, timeout=60)
    assert reply.status_code == 200
    assert reply.json()["output"][-1]["content"][0]["text"] == "You said: " + text.strip()


def test_backend_down_is_a_503_in_the_openai_shape(start_serving: Callable[..., ServerProcess]) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    server = start_serving(dead, name="serving-dead-backend")
    reply = httpx.post(f"{server.url}/invocations", json={"input": "hi"}, timeout=60)
    assert reply.status_code == 503
    error = reply.json()["error"]
    assert error["type"] == "upstream_error" and error["code"] == "upstream_unavailable"
    assert error["message"] == "the model backend is unreachable"
    assert dead.removesuffix("/v1") not in reply.text  # no internal URL reaches the client
    assert dead.removesuffix("/v1") in server.log_text()  # the operator's log names it
    streamed = sse_events(server, "/invocations", {"input": "hi", "stream": True})
    assert [d for _, d in streamed][-1] == "[DONE]"
    event = json.loads(streamed[-2][1])
    assert event["type"] == "error" and event["code"] == "upstream_unavailable"


def test_a_hung_backend_times_out_and_its_work_is_cancelled(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess
) -> None:
    server = start_serving(scripted.url + "/v1", "--request-timeout", "2", name="serving-timeout")
    before = httpx.get(f"{scripted.url}/scripted/stats").json()
    started = time.monotonic()
    reply = httpx.post(f"{server.url}/invocations", json={"input": "hang [[hang=30]]"}, timeout=60)
    assert reply.status_code == 504 and reply.json()["error"]["code"] == "timeout"
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5  # the client did not stream: the model call was a whole answer
    while (
        httpx.get(f"{scripted.url}/scripted/stats").json()["answers_cancelled"] == before["answers_cancelled"]
    ):
        assert time.monotonic() < deadline, "the backend call was not cancelled"
        time.sleep(0.1)


def test_client_disconnect_mid_stream_cancels_the_backend(
    serving: ServerProcess, scripted: ServerProcess
) -> None:
    before = httpx.get(f"{scripted.url}/scripted/stats").json()["streams_cancelled"]
    body = {"input": "long [[ttft=0.1 latency=20 chunks=40]]", "stream": True}
    with httpx.stream("POST", f"{serving.url}/invocations", json=body, timeout=30) as reply:
        for line in reply.iter_lines():
            if line.startswith("data:"):
                break  # read one event, then hang up
    deadline = time.monotonic() + 10
    while httpx.get(f"{scripted.url}/scripted/stats").json()["streams_cancelled"] == before:
        assert time.monotonic() < deadline, "the backend kept streaming after the client left"
        time.sleep(0.1)
    assert httpx.get(f"{serving.url}/ready").json()["in_flight"] == 0


def test_beyond_the_concurrency_limit_the_server_answers_429(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess
) -> None:
    server = start_serving(scripted.url + "/v1", "--max-concurrency", "2", name="serving-limit")

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *[
                    client.post(f"{server.url}/invocations", json={"input": f"slow {i} [[latency=1.5]]"})
                    for i in range(6)
                ]
            )

    replies = asyncio.run(burst())
    statuses = sorted(r.status_code for r in replies)
    assert statuses.count(200) >= 2 and 429 in statuses
    rejected = next(r for r in replies if r.status_code == 429)
    assert rejected.headers["retry-after"] == "1"
    assert rejected.json()["error"]["type"] == "rate_limit_error"


def test_each_request_is_one_trace_with_the_stream_reassembled(serving: ServerProcess) -> None:
    marker = f"trace-me-{time.time_ns()}"
    sse_events(serving, "/invocations", {"input": f"{marker} in Berlin: weather?", "stream": True})
    traces = wait_for_traces(TRACE_EXPERIMENT, lambda t: marker in json.dumps(t.data.request))
    trace = next(t for t in traces if marker in json.dumps(t.data.request))
    spans = trace.data.spans
    root = next(s for s in spans if s.parent_id is None)
    assert root.span_type == "AGENT"
    assert [s.name for s in spans if s.span_type == "TOOL"] == ["get_weather"]
    output = root.outputs
    assert [o["type"] for o in output["output"]] == ["function_call", "function_call_output", "message"]


def test_serves_a_downloaded_model_directory(
    serving_model_uri: str, scripted: ServerProcess, tmp_path: Path, log_dir: Path
) -> None:
    """What the container image does: download the model at build time, serve the directory."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=serving_model_uri, dst_path=str(tmp_path)))
    port = free_port()
    command = [sys.executable, "-m", "serving", "-m", str(local), "-p", str(port)]
    env = venv_env({"OPENAI_BASE_URL": scripted.url + "/v1"})
    server = start_server(
        "serving-local-dir", command, port=port, log_dir=log_dir, env=env, health_path="/ready", timeout=120
    )
    try:
        reply = httpx.post(f"{server.url}/invocations", json={"input": "from a directory"}, timeout=60)
        assert reply.json()["output"][-1]["content"][0]["text"] == "You said: from a directory"
    finally:
        server.stop()
