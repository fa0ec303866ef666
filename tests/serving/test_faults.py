"""The fault suite: what the server does when things go wrong (behaviour, not timing)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import mlflow
import pytest

from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env
from tests.e2e.helpers import run_log_agent, wait_for_traces
from tests.serving.conftest import TRACE_EXPERIMENT
from tests.serving.test_server import sse_events

pytestmark = pytest.mark.e2e


def post(server: ServerProcess, text: str, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{server.url}/invocations", json={"input": text}, timeout=timeout)


def test_backend_5xx_is_a_502_whose_detail_stays_in_the_log(serving: ServerProcess) -> None:
    marker = f"break-{time.time_ns()}"
    reply = post(serving, f"{marker} [[fail=500]]")
    assert reply.status_code == 502
    error = reply.json()["error"]
    assert error == {
        "message": "the model backend failed (HTTP 500)",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_error",
    }
    assert "scripted failure" not in reply.text  # the upstream body is not echoed
    assert "scripted failure 500" in serving.log_text()
    assert post(serving, "and again").status_code == 200
    traces = wait_for_traces(TRACE_EXPERIMENT, lambda t: marker in json.dumps(t.data.request))
    failed = next(t for t in traces if marker in json.dumps(t.data.request))
    assert failed.info.state == "ERROR"  # the request's span ended with the failure recorded


def test_a_malformed_backend_stream_is_an_upstream_error(serving: ServerProcess) -> None:
    reply = post(serving, "garble [[malformed]]")
    assert reply.status_code == 502
    assert reply.json()["error"]["type"] == "upstream_error"
    streamed = sse_events(serving, "/invocations", {"input": "garble [[malformed]]", "stream": True})
    assert streamed[-1][1] == "[DONE]"
    assert json.loads(streamed[-2][1])["code"] == "upstream_error"


def test_a_hang_mid_stream_ends_with_a_timeout_event(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess
) -> None:
    server = start_serving(scripted.url + "/v1", "--request-timeout", "2", name="serving-hang")
    streamed = sse_events(server, "/invocations", {"input": "stall [[hang=30 chunks=8]]", "stream": True})
    events = [json.loads(d) for _, d in streamed[:-1]]
    assert streamed[-1][1] == "[DONE]"
    assert events[-1] == {
        "type": "error",
        "code": "timeout",
        "message": "the request did not finish within the server's timeout",
        "param": None,
    }
    assert streamed[-1][0] < 10


def test_requests_succeed_while_the_tracking_store_is_down(
    serving_model_uri: str, scripted: ServerProcess, tmp_path: Path, log_dir: Path
) -> None:
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=serving_model_uri, dst_path=str(tmp_path)))
    port = free_port()
    env = venv_env(
        {
            "OPENAI_BASE_URL": scripted.url + "/v1",
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        }
    )
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    command = [sys.executable, "-m", "serving", "-m", str(local), "-p", str(port)]
    server = start_server(
        "serving-no-tracking", command, port=port, log_dir=log_dir, env=env, health_path="/ready", timeout=120
    )
    try:
        for i in range(5):
            reply = post(server, f"traced nowhere {i}")
            assert reply.status_code == 200
            assert reply.json()["output"][-1]["content"][0]["text"] == f"You said: traced nowhere {i}"
        assert (
            sse_events(server, "/invocations", {"input": "streamed too", "stream": True})[-1][1] == "[DONE]"
        )
    finally:
        server.stop()


def test_graceful_shutdown_under_load_drops_no_request_and_no_trace(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess
) -> None:
    marker = f"drain-{time.time_ns()}"
    server = start_serving(scripted.url + "/v1", name="serving-drain", experiment=marker)

    async def load() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            calls = [
                asyncio.ensure_future(
                    client.post(f"{server.url}/invocations", json={"input": f"{marker} {i} [[latency=1]]"})
                )
                for i in range(40)
            ]
            await asyncio.sleep(0.4)
            os.kill(server.process.pid, signal.SIGTERM)
            return [r.status_code for r in await asyncio.gather(*calls)]

    statuses = asyncio.run(load())
    assert statuses == [200] * 40  # every accepted request finished
    # uvicorn re-raises the signal once it has drained, so the exit status reports SIGTERM.
    assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert "stopped: 0 requests in flight, model closed, traces flushed" in server.log_text()
    # The server flushed its traces before exiting: all 40 are in the store now, no waiting.
    experiment = mlflow.MlflowClient().get_experiment_by_name(marker)
    assert experiment is not None
    traces = mlflow.search_traces(locations=[experiment.experiment_id], return_type="list", max_results=1000)
    found = sum(1 for t in traces if marker in json.dumps(t.data.request))
    assert found == 40, f"{40 - found} traces lost in shutdown"


def _ours(ready: dict) -> dict:
    """What a request could leak: its slot, its tasks on either loop, threads of its own."""
    return {
        "in_flight": ready["in_flight"],
        "run tasks": [t for t in ready["tasks"] if t.startswith("agentship")],
        "agent tasks": ready["agent_tasks"],
        "threads": sorted(t for t in ready["threads"] if t.startswith(("predict", "agentship"))),
    }


def test_client_disconnect_leaks_no_task_or_thread(serving: ServerProcess, scripted: ServerProcess) -> None:
    post(serving, "settle")
    baseline = _ours(httpx.get(f"{serving.url}/ready").json())
    assert baseline["in_flight"] == 0 and baseline["run tasks"] == baseline["agent tasks"] == []
    for _ in range(5):
        with httpx.stream(
            "POST",
            f"{serving.url}/invocations",
            json={"input": "long [[latency=10 chunks=40]]", "stream": True},
            timeout=30,
        ) as reply:
            for line in reply.iter_lines():
                if line.startswith("data:"):
                    break
    deadline = time.monotonic() + 10
    while True:
        now = _ours(httpx.get(f"{serving.url}/ready").json())
        if now == baseline:
            break
        assert time.monotonic() < deadline, f"leaked: before {baseline}, after {now}"
        time.sleep(0.2)


def test_256_concurrent_conversations_get_their_own_answers(serving: ServerProcess) -> None:
    async def burst() -> list[tuple[int, str, str]]:
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=300)) as client:

            async def one(i: int) -> tuple[int, str, str]:
                token = f"conversation-{i}-{time.time_ns()}"
                body = {"input": f"I am {token} [[latency=0.5]]", "context": {"conversation_id": token}}
                reply = await client.post(f"{serving.url}/invocations", json=body)
                text = reply.json()["output"][-1]["content"][0]["text"] if reply.status_code == 200 else ""
                return reply.status_code, token, text

            return await asyncio.gather(*[one(i) for i in range(256)])

    results = asyncio.run(burst())
    assert [status for status, _, _ in results] == [200] * 256
    assert all(text == f"You said: I am {token}" for _, token, text in results)


def test_secrets_appear_in_no_log_line_or_trace(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess
) -> None:
    secret = "sk-serving-SECRET-e81f33"
    os.environ["OPENAI_API_KEY"] = secret
    try:
        server = start_serving(scripted.url + "/v1", "--log-level", "debug", name="serving-secret")
    finally:
        del os.environ["OPENAI_API_KEY"]
    marker = f"secret-check-{time.time_ns()}"
    assert post(server, f"{marker} weather in Paris").status_code == 200
    assert post(server, f"{marker} [[fail=401]]").status_code == 502
    traces = wait_for_traces(TRACE_EXPERIMENT, lambda t: marker in json.dumps(t.data.request))
    assert all(secret not in t.to_json() for t in traces)
    log = server.log_text()
    assert "DEBUG" in log  # the log really was verbose
    assert secret not in log


@pytest.mark.parametrize(
    ("fail", "status", "code"),
    [
        (401, 502, "upstream_auth_failed"),
        (403, 502, "upstream_auth_failed"),
        (429, 503, "upstream_rate_limited"),
        (400, 400, "upstream_rejected_request"),
        (503, 502, "upstream_error"),
    ],
)
def test_upstream_errors_are_classified_and_their_detail_stays_in_the_log(
    serving: ServerProcess, fail: int, status: int, code: str
) -> None:
    mark = f"class-{fail}-{time.time_ns()}"
    for path in ("/invocations", "/responses"):
        reply = httpx.post(f"{serving.url}{path}", json={"input": f"{mark} [[fail={fail}]]"}, timeout=60)
        assert reply.status_code == status, reply.text
        error = reply.json()["error"]
        assert error["code"] == code
        assert "scripted failure" not in reply.text and "127.0.0.1" not in reply.text
        if fail == 429:
            assert reply.headers["retry-after"] == "1"
    assert f"scripted failure {fail}" in serving.log_text()


@pytest.fixture(scope="module")
def impatient_model() -> str:
    """The example agent with a 1 s model-call timeout and no retries."""
    result = run_log_agent(
        "--agent", "openai-agents", "--registered-model-name", "impatient-agent",
        "--set", "request_timeout_s=1", "--set", "max_retries=0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return "models:/impatient-agent/1"


def test_a_model_call_that_times_out_is_a_504_upstream_timeout(
    impatient_model: str, scripted: ServerProcess, log_dir: Path
) -> None:
    port = free_port()
    command = [sys.executable, "-m", "serving", "-m", impatient_model, "-p", str(port)]
    env = venv_env({"OPENAI_BASE_URL": scripted.url + "/v1"})
    server = start_server(
        "serving-impatient", command, port=port, log_dir=log_dir, env=env, health_path="/ready"
    )
    try:
        started = time.monotonic()
        reply = post(server, "stall [[hang=20]]")
        assert reply.status_code == 504, reply.text
        assert reply.json()["error"] == {
            "message": "the model backend did not answer within 1s",
            "type": "upstream_error",
            "param": None,
            "code": "upstream_timeout",
        }
        assert time.monotonic() - started < 10
    finally:
        server.stop()


def test_the_timeout_reaches_the_backend_while_the_client_reads_nothing(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess
) -> None:
    server = start_serving(scripted.url + "/v1", "-t", "2", name="serving-slow-reader")
    before = httpx.get(f"{scripted.url}/scripted/stats").json()["streams_cancelled"]
    body = {"input": "a long story [[latency=30 chunks=300]]", "stream": True}
    started = time.monotonic()
    with httpx.stream("POST", f"{server.url}/responses", json=body, timeout=60) as reply:
        assert reply.status_code == 200
        # Read nothing: the server must still stop the backend at its timeout.
        while httpx.get(f"{scripted.url}/scripted/stats").json()["streams_cancelled"] == before:
            assert time.monotonic() - started < 10, "the backend kept streaming past the request timeout"
            time.sleep(0.2)
        events = [json.loads(line[5:]) for line in reply.iter_lines() if line.startswith("data:")]
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"] == {
        "code": "server_error",
        "message": "the request did not finish within the server's timeout",
        "type": "timeout",
        "param": None,
    }


def test_sigterm_lets_open_streams_finish(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess
) -> None:
    server = start_serving(scripted.url + "/v1", name="serving-drain-streams")

    async def streams() -> list[list[str]]:
        opened = asyncio.Event()
        started = 0

        async def one(client: httpx.AsyncClient, i: int) -> list[str]:
            nonlocal started
            body = {"input": f"stream {i} [[latency=3 chunks=6]]", "stream": True}
            kinds: list[str] = []
            async with client.stream("POST", f"{server.url}/responses", json=body) as reply:
                async for line in reply.aiter_lines():
                    if line.startswith("event:"):
                        kinds.append(line[6:].strip())
                        if len(kinds) == 1:
                            started += 1
                            if started == 20:
                                opened.set()
            return kinds

        async with httpx.AsyncClient(timeout=60) as client:
            calls = [asyncio.ensure_future(one(client, i)) for i in range(20)]
            await asyncio.wait_for(opened.wait(), 30)
            os.kill(server.process.pid, signal.SIGTERM)
            return await asyncio.gather(*calls)

    for kinds in asyncio.run(streams()):
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
        assert kinds.count("response.output_text.delta") == 6
    assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
