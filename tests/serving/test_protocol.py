"""``/responses`` on the wire, as api.openai.com speaks it, and ``/invocations`` as MLflow does.

Framing, event order, the terminal events, usage, trace ids, errors for unknown routes; read
off the raw bytes of a real ``python -m serving`` (the client tests check what clients make
of them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import mlflow
import pytest

from agentship.testing.processes import ServerProcess, start_scripted_llm
from tests.e2e.helpers import wait_for_traces
from tests.serving.clients import MODEL, PARIS, marker
from tests.serving.conftest import TRACE_EXPERIMENT
from tests.serving.openai_types import valid_events, valid_response

pytestmark = pytest.mark.e2e


def frames(
    server: ServerProcess, path: str, body: dict, headers: dict | None = None
) -> list[tuple[str | None, str]]:
    """(event name, data) of each server-sent event, as sent."""
    out: list[tuple[str | None, str]] = []
    event: str | None = None
    with httpx.stream("POST", f"{server.url}{path}", json=body, headers=headers, timeout=60) as reply:
        assert reply.status_code == 200, reply.read()
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                out.append((event, line[5:].strip()))
                event = None
    return out


def responses_events(server: ServerProcess, body: dict, headers: dict | None = None) -> list[dict]:
    sent = frames(server, "/responses", {"model": MODEL, **body, "stream": True}, headers)
    events = [json.loads(data) for _, data in sent]
    assert [name for name, _ in sent] == [e["type"] for e in events]  # `event:` names every event
    return valid_events(events)


def test_a_stream_is_framed_and_ordered_as_openai_sends_it(serving: ServerProcess) -> None:
    events = responses_events(serving, {"input": f"What is the weather in Paris? {marker()}"})
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] == "response.completed"
    assert sum(e["type"].startswith("response.completed") for e in events) == 1
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["model"] == MODEL and final["error"] is None
    assert [o["type"] for o in final["output"]] == ["mcp_call", "message"]
    call = final["output"][0]
    assert (call["name"], call["server_label"], call["output"], call["error"]) == (
        "get_weather",
        "agent",
        PARIS,
        None,
    )
    kinds = [e["type"] for e in events]
    assert "response.mcp_call.completed" in kinds and "function_call" not in json.dumps(final)
    assert set(final["usage"]) == {
        "input_tokens",
        "input_tokens_details",
        "output_tokens",
        "output_tokens_details",
        "total_tokens",
    }


def test_invocations_keeps_mlflows_format(serving: ServerProcess) -> None:
    sent = frames(serving, "/invocations", {"input": "What is the weather in Paris?", "stream": True})
    assert {name for name, _ in sent} == {None}  # data lines only, as mlflow models serve
    assert sent[-1][1] == "[DONE]"
    done = [
        json.loads(d)["item"]["type"]
        for _, d in sent[:-1]
        if json.loads(d)["type"] == "response.output_item.done"
    ]
    assert done == ["function_call", "function_call_output", "message"]


def test_a_failure_mid_stream_ends_with_response_failed(serving: ServerProcess) -> None:
    events = responses_events(serving, {"input": "garble [[malformed]]"})
    assert events[0]["type"] == "response.created"
    last = events[-1]
    assert last["type"] == "response.failed" and "error" not in last  # no top-level error key
    assert last["response"]["status"] == "failed"
    assert last["response"]["error"] == {  # the spec's code, the specific one as the original type
        "code": "server_error",
        "message": "the model backend sent a malformed response",
        "type": "upstream_error",
        "param": None,
    }


@pytest.fixture(scope="module")
def no_usage(start_serving: Callable[..., ServerProcess], log_dir: Path) -> Iterator[ServerProcess]:
    """An agent over a model that reports no usage in its streams (as llama.cpp's server)."""
    backend = start_scripted_llm(log_dir, "--nousage")
    yield start_serving(backend.url + "/v1", name="serving-no-usage")
    backend.stop()


def test_usage_the_backend_did_not_report_is_null_not_zero(no_usage: ServerProcess) -> None:
    """That backend streams no usage: streamed, the usage is null (absent from MLflow's format),
    never made-up zeros. A client that does not stream gets a whole answer from the backend,
    and with it the usage that the backend does report there."""
    final = responses_events(no_usage, {"input": "count nothing"})[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "You said: count nothing"
    assert final["usage"] is None
    streamed = frames(no_usage, "/invocations", {"input": "count nothing", "stream": True})
    events = [json.loads(data) for _, data in streamed if data != "[DONE]"]
    assert events and not any("usage" in event for event in events)
    reply = valid_response(
        httpx.post(f"{no_usage.url}/responses", json={"input": "count nothing"}, timeout=60).json()
    )
    usage = reply["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    invoked = httpx.post(f"{no_usage.url}/invocations", json={"input": "count nothing"}, timeout=60).json()
    assert invoked["usage"]["output_tokens"] == usage["output_tokens"]


def test_the_trace_id_comes_back_on_request_and_the_response_id_is_on_the_trace(
    serving: ServerProcess,
) -> None:
    ask = {"x-mlflow-return-trace-id": "true"}
    mark = marker()
    body = httpx.post(
        f"{serving.url}/responses", json={"input": f"trace {mark}"}, headers=ask, timeout=60
    ).json()
    trace_id = body["metadata"]["trace_id"]
    trace = mlflow.get_trace(trace_id)
    for _ in range(60):  # exported asynchronously, the root span last
        if trace is not None and trace.data.request is not None:
            break
        time.sleep(0.5)
        trace = mlflow.get_trace(trace_id)
    assert trace is not None and mark in json.dumps(trace.data.request)
    assert trace.info.client_request_id == body["id"]  # feedback can be attached by response id

    streamed = responses_events(serving, {"input": f"trace {mark} again"}, ask)[-1]["response"]
    assert streamed["metadata"]["trace_id"].startswith("tr-")
    invoked = httpx.post(
        f"{serving.url}/invocations", json={"input": "trace me"}, headers=ask, timeout=60
    ).json()
    assert invoked["metadata"]["trace_id"].startswith("tr-")
    sent = frames(serving, "/invocations", {"input": "trace me", "stream": True}, ask)
    assert json.loads(sent[-2][1])["trace_id"].startswith("tr-") and sent[-1][1] == "[DONE]"
    plain = httpx.post(f"{serving.url}/responses", json={"input": "no trace id"}, timeout=60).json()
    assert "trace_id" not in plain["metadata"]


def test_request_fields_are_echoed(serving: ServerProcess) -> None:
    body = {"model": "my-agent", "input": "echo", "instructions": "Be brief.", "metadata": {"team": "a"}}
    reply = valid_response(httpx.post(f"{serving.url}/responses", json=body, timeout=60).json())
    assert (reply["model"], reply["instructions"], reply["metadata"]) == (
        "my-agent",
        "Be brief.",
        {"team": "a"},
    )
    default = httpx.post(f"{serving.url}/responses", json={"input": "echo"}, timeout=60).json()
    assert default["model"] == "models:/serving-agent@live"  # no model asked for: the served one


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("POST", "/v1/chat/completions", 404),
        ("GET", "/responses", 405),
        ("DELETE", "/invocations", 405),
    ],
)
def test_unknown_routes_and_methods_answer_in_the_openai_error_shape(
    serving: ServerProcess, method: str, path: str, status: int
) -> None:
    reply = httpx.request(method, f"{serving.url}{path}", timeout=10)
    assert reply.status_code == status
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] is None
    if status == 404:
        assert error["message"] == f"Invalid URL ({method} {path})"


def test_item_references_are_refused_by_name(serving: ServerProcess) -> None:
    body = {"input": [{"role": "user", "content": "hi"}, {"type": "item_reference", "id": "msg_123"}]}
    reply = httpx.post(f"{serving.url}/responses", json=body, timeout=30)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert (
        error["param"] == "input" and "item_reference" in error["message"] and "msg_123" in error["message"]
    )


def test_the_served_model_is_listed(serving: ServerProcess) -> None:
    listed = httpx.get(f"{serving.url}/v1/models", timeout=10).json()
    assert [m["id"] for m in listed["data"]] == ["models:/serving-agent@live"]


def test_a_failed_requests_trace_is_found_by_its_response_id(serving: ServerProcess) -> None:
    mark = marker()
    reply = httpx.post(f"{serving.url}/responses", json={"input": f"{mark} [[fail=500]]"}, timeout=60)
    assert reply.status_code == 502
    traces = wait_for_traces(TRACE_EXPERIMENT, lambda t: mark in json.dumps(t.data.request))
    failed = next(t for t in traces if mark in json.dumps(t.data.request))
    assert failed.info.state == "ERROR" and (failed.info.client_request_id or "").startswith("resp_")


def _model_calls(scripted: ServerProcess, mark: str) -> list[bool]:
    """Whether each model call made for the request marked ``mark`` asked for a stream."""
    recorded = httpx.get(f"{scripted.url}/scripted/requests", timeout=10).json()
    return [entry["stream"] for entry in recorded if mark in json.dumps(entry["messages"])]


@pytest.mark.parametrize(
    ("route", "stream"),
    [("/invocations", False), ("/invocations", True), ("/v1/responses", False), ("/v1/responses", True)],
)
def test_the_model_is_asked_to_stream_only_when_the_client_streams(
    serving: ServerProcess, scripted: ServerProcess, route: str, stream: bool
) -> None:
    """A client that reads the answer whole gets it from model calls answered whole: parsing a
    stream of hundreds of chunks was most of a request's CPU. Same items either way."""
    mark = marker()
    body = {"input": [{"role": "user", "content": f"What is the weather in Paris? {mark}"}], "stream": stream}
    if route == "/v1/responses":
        body["model"] = MODEL
    if stream:
        sent = [json.loads(data) for _, data in frames(serving, route, body) if data != "[DONE]"]
        text = json.dumps(sent, ensure_ascii=False)
    else:
        reply = httpx.post(f"{serving.url}{route}", json=body, timeout=60)
        assert reply.status_code == 200
        text = json.dumps(reply.json(), ensure_ascii=False)
    assert PARIS in text
    assert _model_calls(scripted, mark) == [stream, stream]  # the tool call, then the answer
