"""MCP servers, approvals, client tools, guardrails, structured output and per-request settings,
through real served models: ``python -m serving`` and ``mlflow models serve``.

The MCP servers are real: ``mcp-server-time`` from PyPI over stdio, and a streamable-HTTP server
written with the ``mcp`` SDK (``tests/serving/mcp_servers/docs_server.py``) that checks a token.
The scripted model calls their tools by name.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import mlflow
import openai
import pytest

from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool
from agentship.testing.processes import ServerProcess, free_port, start_mlflow_serve, start_server, venv_env
from tests.e2e.helpers import REPO, download_model, files_containing, run_log_agent, wait_for_traces
from tests.serving.clients import marker
from tests.serving.mcp_servers import start_docs_server

pytestmark = pytest.mark.e2e

DOCS_TOKEN = "docs-TOKEN-5150"
EXPERIMENT = "tools-traces"


def register(config: str, name: str, *overrides: str) -> str:
    sets = [arg for o in overrides for arg in ("--set", o)]
    result = run_log_agent(
        "--agent", "openai-agents", "--config", str(REPO / "configs" / config), "--registered-model-name", name, *sets
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return f"models:/{name}/1"


@pytest.fixture(scope="module")
def docs_mcp(log_dir: Path) -> Iterator[ServerProcess]:
    server = start_docs_server(log_dir, DOCS_TOKEN)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def serve(scripted: ServerProcess, log_dir: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(
        model_uri: str, name: str, extra_env: dict[str, str] | None = None, mlflow_serve: bool = False
    ) -> ServerProcess:
        env = {
            "OPENAI_BASE_URL": scripted.url + "/v1",
            "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
            **(extra_env or {}),
        }
        if mlflow_serve:
            server = start_mlflow_serve(model_uri, log_dir, env, name=f"mlflow-{name}")
        else:
            port = free_port()
            command = [sys.executable, "-m", "serving", "-m", model_uri, "-p", str(port)]
            server = start_server(
                f"{name}-{port}",
                command,
                port=port,
                log_dir=log_dir,
                env=venv_env(env),
                health_path="/ready",
                timeout=120,
            )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def responses(server: ServerProcess, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    reply = httpx.post(f"{server.url}/responses", json={"model": "agent", **body}, timeout=90)
    assert reply.status_code == status, reply.text
    return dict(reply.json())


def invocations(server: ServerProcess, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    reply = httpx.post(f"{server.url}/invocations", json=body, timeout=90)
    assert reply.status_code == status, reply.text
    return dict(reply.json())


def kinds(body: dict[str, Any]) -> list[str]:
    return [item["type"] for item in body["output"]]


def text(body: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in body["output"][-1].get("content") or [])


def docs_text(topic: str) -> str:
    return f"The docs on {topic} say: deploy with python -m serving."


def assert_time_text(text: str, timezone: str) -> None:
    """mcp-server-time's answer as it writes it: its JSON, indented by two, and nothing else."""
    value = json.loads(text)
    assert text == json.dumps(value, indent=2)
    assert list(value) == ["timezone", "datetime", "day_of_week", "is_dst"]
    assert value["timezone"] == timezone
    assert value["day_of_week"] == datetime.fromisoformat(value["datetime"]).strftime("%A")


# -- MCP ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mcp_model() -> str:
    return register("openai_agents_mcp.yaml", "tools-mcp")


@pytest.fixture(scope="module")
def mcp_server(serve: Callable[..., ServerProcess], mcp_model: str, docs_mcp: ServerProcess) -> ServerProcess:
    env = {"DOCS_MCP_URL": f"{docs_mcp.url}/mcp", "DOCS_MCP_TOKEN": DOCS_TOKEN}
    return serve(mcp_model, "serving-mcp", env)


def test_mcp_tools_over_stdio_and_streamable_http_are_mcp_calls(
    mcp_server: ServerProcess, scripted: ServerProcess
) -> None:
    assert httpx.get(f"{mcp_server.url}/ready").json()["agent"] == {
        "mcp_servers": {"time": "ok", "docs": "ok"}
    }
    mark = marker()
    timed = responses(mcp_server, {"input": f"What is the current time in Europe/Paris? {mark}"})
    assert kinds(timed) == ["mcp_call", "message"]
    call = timed["output"][0]
    assert (call["server_label"], call["name"], call["status"]) == ("time", "get_current_time", "completed")
    assert json.loads(call["arguments"]) == {"timezone": "Europe/Paris"}
    assert_time_text(call["output"], "Europe/Paris")
    docs = responses(mcp_server, {"input": "Please look in the docs about Deployment"})
    assert [(c["server_label"], c["name"]) for c in docs["output"][:1]] == [("docs", "lookup_docs")]
    assert docs["output"][0]["output"] == docs_text("Deployment")
    seen = [r for r in httpx.get(f"{scripted.url}/scripted/requests").json() if mark in json.dumps(r)]
    offered = seen[-1]
    # The model was given the tool's text itself (a string, not content parts), as the client is.
    assert [r["tool_results"] for r in seen] == [[], [call["output"]]]
    # Filters hold: allowed_tools on the time server, blocked_tools on the docs server.
    assert sorted(offered["tools"]) == [
        "convert_time",
        "explode",
        "fetch_bundle",
        "get_current_time",
        "get_weather",
        "lookup_docs",
    ]
    traces = wait_for_traces(EXPERIMENT, lambda t: mark in json.dumps(t.data.request))
    trace = next(t for t in traces if mark in json.dumps(t.data.request))
    [tool] = [s for s in trace.data.spans if s.span_type == "TOOL"]
    # MLflow's SQL store un-nests an attribute holding JSON text: the output comes back parsed.
    assert (tool.name, tool.inputs, tool.outputs) == (
        "get_current_time",
        {"timezone": "Europe/Paris"},
        json.loads(call["output"]),
    )
    assert tool.attributes["gen_ai.tool.call.id"] == call["id"].removeprefix("mcp_")


def test_mcp_tools_under_mlflow_models_serve(
    serve: Callable[..., ServerProcess], mcp_model: str, docs_mcp: ServerProcess
) -> None:
    env = {"DOCS_MCP_URL": f"{docs_mcp.url}/mcp", "DOCS_MCP_TOKEN": DOCS_TOKEN}
    server = serve(mcp_model, "mcp", env, mlflow_serve=True)
    body = invocations(
        server, {"input": [{"role": "user", "content": "Please look in the docs about Tracing"}]}
    )
    assert kinds(body) == ["function_call", "function_call_output", "message"]
    assert body["output"][0]["name"] == "lookup_docs" and body["output"][0]["server_label"] == "docs"
    assert body["output"][1] == {
        "type": "function_call_output",
        "call_id": body["output"][0]["call_id"],
        "output": docs_text("Tracing"),
    }


def test_a_failing_mcp_tool_is_an_error_result_for_the_model(mcp_server: ServerProcess) -> None:
    body = responses(mcp_server, {"input": "Time to explode because Testing"})
    assert kinds(body) == ["mcp_call", "message"] and body["status"] == "completed"
    assert body["output"][0]["output"] == "Error executing tool explode"  # the server's whole error text
    assert "The explode tool returned:" in text(body)


def test_the_mcp_token_is_secret(mcp_server: ServerProcess, mcp_model: str, tmp_path: Path) -> None:
    responses(mcp_server, {"input": "Please look in the docs about Secrets"})
    assert files_containing(download_model(mcp_model, tmp_path), DOCS_TOKEN) == []
    assert DOCS_TOKEN not in mcp_server.log_text()
    traces = wait_for_traces(EXPERIMENT, lambda t: "Secrets" in json.dumps(t.data.request))
    assert all(DOCS_TOKEN not in t.to_json() for t in traces)


def _wait_health(server: ServerProcess, name: str, want: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while True:
        health = httpx.get(f"{server.url}/ready", timeout=10).json()["agent"]["mcp_servers"][name]
        if health.startswith(want):
            return
        assert time.monotonic() < deadline, f"{name} stayed {health!r}"
        time.sleep(0.5)


def test_an_mcp_server_down_at_load_is_skipped_then_picked_up(
    serve: Callable[..., ServerProcess], mcp_model: str, log_dir: Path
) -> None:
    port = free_port()
    server = serve(
        mcp_model,
        "serving-mcp-late",
        {"DOCS_MCP_URL": f"http://127.0.0.1:{port}/mcp", "DOCS_MCP_TOKEN": DOCS_TOKEN},
    )
    assert httpx.get(f"{server.url}/ready").json()["agent"]["mcp_servers"]["docs"].startswith("unavailable")
    assert "current time" in responses(server, {"input": "What is the current time in UTC?"})["output"][0][
        "name"
    ].replace("_", " ")
    docs = start_docs_server(log_dir, DOCS_TOKEN, name="docs-mcp-late", port=port)
    try:
        _wait_health(server, "docs", "ok")
        body = responses(server, {"input": "Please look in the docs about Recovery"})
        assert body["output"][0]["server_label"] == "docs"
        assert body["output"][0]["output"] == docs_text("Recovery")
    finally:
        docs.stop()


def _time_servers(serving: ServerProcess) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", "bin/mcp-server-time"], capture_output=True, text=True
    ).stdout.split()
    ours = [int(p) for p in found if _descends_from(int(p), serving.process.pid)]
    assert ours, (found, serving.process.pid, [Path(f"/proc/{p}/stat").read_text()[:80] for p in found])
    return ours


def test_a_stdio_mcp_server_that_dies_is_restarted(mcp_server: ServerProcess) -> None:
    [first] = _time_servers(mcp_server)
    os.kill(first, signal.SIGKILL)
    during = responses(mcp_server, {"input": "What is the current time in Asia/Tokyo?"})
    assert during["status"] == "completed"  # a call to the dead server is an error result, not a failure
    deadline = time.monotonic() + 40
    while "MCP server 'time' is back" not in mcp_server.log_text():
        assert time.monotonic() < deadline, "the time server was not restarted"
        time.sleep(0.5)
    [second] = _time_servers(mcp_server)
    assert second != first  # a new process
    after = responses(mcp_server, {"input": "What is the current time in Asia/Tokyo?"})
    assert after["output"][0]["name"] == "get_current_time"
    assert_time_text(after["output"][0]["output"], "Asia/Tokyo")


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[1])
        except (OSError, IndexError, ValueError):
            return False
    return False


# -- approvals ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def approvals_model() -> str:
    return register("openai_agents_approvals.yaml", "tools-approvals")


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_tool_needing_approval_pauses_and_resumes_on_responses(
    serve: Callable[..., ServerProcess], approvals_model: str, decision: str
) -> None:
    server = serve(approvals_model, f"serving-approvals-{decision}")
    paused = responses(server, {"input": "Please send email to Bob"})
    assert kinds(paused) == ["mcp_approval_request"] and paused["status"] == "completed"
    ask = paused["output"][0]
    assert ask == {  # OpenAI's item, with no field it lacks (no "status")
        "type": "mcp_approval_request",
        "id": ask["id"],
        "server_label": "agent",
        "name": "send_email",
        "arguments": ask["arguments"],
    }
    assert ask["id"].startswith("mcpr_") and json.loads(ask["arguments"])["to"] == "Bob"
    answer = {
        "type": "mcp_approval_response",
        "approval_request_id": ask["id"],
        "approve": decision == "approve",
    }
    if decision == "reject":
        answer["reason"] = "Not today."
    resumed = responses(server, {"previous_response_id": paused["id"], "input": [answer]})
    assert kinds(resumed) == ["mcp_call", "message"]
    assert resumed["output"][0]["name"] == "send_email"
    expected = "Email sent to Bob." if decision == "approve" else "Not today."
    assert resumed["output"][0]["output"] == expected
    assert text(resumed) == f"The send_email tool returned: {expected}"
    # An answer cannot be replayed: the paused run is gone.
    again = httpx.post(
        f"{server.url}/responses", json={"previous_response_id": paused["id"], "input": [answer]}, timeout=60
    )
    assert again.status_code == 400 and "no paused run" in again.json()["error"]["message"]


def test_approvals_in_mlflows_format_under_mlflow_models_serve(
    serve: Callable[..., ServerProcess], approvals_model: str
) -> None:
    server = serve(approvals_model, "approvals", mlflow_serve=True)
    context = {"conversation_id": f"approve-{marker()}", "user_id": "ops"}
    paused = invocations(
        server, {"input": [{"role": "user", "content": "Please send email to Carol"}], "context": context}
    )
    assert kinds(paused) == ["mcp_approval_request"]
    answer = {
        "type": "mcp_approval_response",
        "approval_request_id": paused["output"][0]["id"],
        "approve": True,
    }
    resumed = invocations(server, {"input": [answer], "context": context})
    assert kinds(resumed) == ["function_call", "function_call_output", "message"]
    assert resumed["output"][1]["output"] == "Email sent to Carol."
    # Another user cannot answer it.
    stranger = httpx.post(
        f"{server.url}/invocations",
        json={"input": [answer], "context": {**context, "user_id": "eve"}},
        timeout=60,
    )
    assert stranger.status_code == 400


# -- client tools ---------------------------------------------------------------------------------
STOCK_TOOL = {
    "type": "function",
    "name": "get_stock_price",
    "description": "The price of a stock.",
    "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}}, "required": ["symbol"]},
}


def test_a_client_tool_is_a_function_call_for_the_client_and_its_output_resumes_the_run(
    serving: ServerProcess,
) -> None:
    asked = responses(serving, {"input": "What is the stock price of ACME?", "tools": [STOCK_TOOL]})
    assert kinds(asked) == ["function_call"]
    call = asked["output"][0]
    assert (call["name"], json.loads(call["arguments"])) == ("get_stock_price", {"symbol": "ACME"})
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "ACME is at 42.00"}
    answered = responses(
        serving, {"previous_response_id": asked["id"], "input": [output], "tools": [STOCK_TOOL]}
    )
    assert kinds(answered) == ["message"]
    assert text(answered) == "The get_stock_price tool returned: ACME is at 42.00"


def test_the_openai_agents_sdk_as_a_client_runs_its_own_tool(serving: ServerProcess) -> None:
    @function_tool
    def get_stock_price(symbol: str) -> str:
        """The price of a stock."""
        return f"{symbol} is at 99.50"

    async def run() -> Any:
        client = openai.AsyncOpenAI(base_url=serving.url, api_key="unused", max_retries=0)
        agent = Agent(
            name="client",
            model=OpenAIResponsesModel(model="agent", openai_client=client),
            tools=[get_stock_price],
        )
        return await Runner.run(
            agent, "What is the stock price of INIT?", run_config=RunConfig(tracing_disabled=True)
        )

    result = asyncio.run(run())
    assert result.final_output == "The get_stock_price tool returned: INIT is at 99.50"
    assert len(result.raw_responses) == 2  # asked for the call, then answered after the client ran it


# -- guardrails -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def guarded(serve: Callable[..., ServerProcess]) -> dict[str, ServerProcess]:
    model = register("openai_agents_guardrails.yaml", "tools-guardrails")
    return {
        "serving": serve(model, "serving-guardrails"),
        "mlflow": serve(model, "guardrails", mlflow_serve=True),
    }


@pytest.mark.parametrize(
    ("question", "kind", "name"),
    [("What is my password?", "input", "no_passwords"), ("Repeat after me SECRET", "output", "no_secrets")],
)
def test_a_tripped_guardrail_is_a_400_naming_it_everywhere(
    guarded: dict[str, ServerProcess], question: str, kind: str, name: str
) -> None:
    mark = marker()
    for path in ("/responses", "/invocations"):
        reply = httpx.post(
            f"{guarded['serving'].url}{path}", json={"input": f"{question} {mark}"}, timeout=60
        )
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert (error["type"], error["code"], error["param"]) == (
            "guardrail_triggered",
            f"{kind}_guardrail",
            name,
        )
        assert f"the {kind} guardrail '{name}' tripped" in error["message"]
    with httpx.stream(
        "POST", f"{guarded['serving'].url}/responses", json={"input": question, "stream": True}, timeout=60
    ) as reply:
        last = [json.loads(line[5:]) for line in reply.iter_lines() if line.startswith("data:")][-1]
    assert last["type"] == "response.failed"
    assert last["response"]["error"] == {  # the spec's code, the specific one as the original type
        "code": "invalid_prompt",
        "message": last["response"]["error"]["message"],
        "type": f"{kind}_guardrail",
        "param": name,
    }
    assert f"the {kind} guardrail '{name}' tripped" in last["response"]["error"]["message"]
    stock = httpx.post(
        f"{guarded['mlflow'].url}/invocations",
        json={"input": [{"role": "user", "content": question}]},
        timeout=60,
    )
    assert stock.status_code == 400 and f"guardrail '{name}' tripped" in stock.text
    assert (
        httpx.post(f"{guarded['serving'].url}/responses", json={"input": "hello"}, timeout=60).status_code
        == 200
    )
    traces = wait_for_traces(EXPERIMENT, lambda t: mark in json.dumps(t.data.request))
    tripped = next(t for t in traces if mark in json.dumps(t.data.request))
    assert tripped.info.state == "ERROR" and any(s.name == name for s in tripped.data.spans)


# -- structured output, model settings ----------------------------------------------------------------
def test_structured_output_from_the_config_and_from_the_request(
    serve: Callable[..., ServerProcess], serving: ServerProcess
) -> None:
    structured = serve(register("openai_agents_structured.yaml", "tools-structured"), "serving-structured")
    body = responses(structured, {"input": "Weather report for Paris at 18 degrees"})
    assert json.loads(text(body)) == {"city": "Paris", "temperature_c": 18.0}
    broken = httpx.post(
        f"{structured.url}/responses", json={"input": "Weather for Paris [[badjson]]"}, timeout=60
    )
    assert (
        broken.status_code == 502
        and broken.json()["error"]["message"] == "the model backend sent a malformed response"
    )
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "score": {"type": "integer"}},
        "required": ["answer", "score"],
    }
    fmt = {"format": {"type": "json_schema", "name": "verdict", "schema": schema}}
    asked = responses(serving, {"input": "Judge Berlin out of 7", "text": fmt})
    assert json.loads(text(asked)) == {"answer": "Berlin", "score": 7}
    pydantic_model = serve(
        register(
            "openai_agents_structured.yaml",
            "tools-pydantic",
            "output_type=agentship.examples.schemas:WeatherReport",
        ),
        "serving-pydantic",
    )
    assert json.loads(text(responses(pydantic_model, {"input": "Report for Oslo at 3 degrees"}))) == {
        "city": "Oslo",
        "temperature_c": 3.0,
    }


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("model_settings={temprature: 0.2}", "'temprature'"),
        ("model_settings={temperature: hot}", "'temperature'"),
    ],
)
def test_model_settings_are_checked_before_anything_is_logged(setting: str, problem: str) -> None:
    result = run_log_agent("--agent", "openai-agents", "--no-register", "--set", setting)
    assert result.returncode == 2 and problem in result.stderr, result.stderr


def test_per_request_settings_reach_the_model(serving: ServerProcess, scripted: ServerProcess) -> None:
    mark = marker()
    body = {
        "input": f"Tell me about {mark}",
        "temperature": 0.7,
        "top_p": 0.5,
        "max_output_tokens": 50,
        "parallel_tool_calls": False,
        "tool_choice": {"type": "function", "name": "get_weather"},
        "frobnicate": True,  # unknown fields are ignored, as OpenAI-compatible servers do
    }
    forced = responses(serving, body)
    assert kinds(forced) == ["mcp_call", "message"] and forced["output"][0]["name"] == "get_weather"
    sent = next(r for r in httpx.get(f"{scripted.url}/scripted/requests").json() if mark in json.dumps(r))
    assert {
        k: sent["settings"][k] for k in ("temperature", "top_p", "max_tokens", "parallel_tool_calls")
    } == {
        "temperature": 0.7,
        "top_p": 0.5,
        "max_tokens": 50,
        "parallel_tool_calls": False,
    }
    assert sent["settings"]["tool_choice"]["function"]["name"] == "get_weather"
    other = marker()
    invocations(serving, {"input": f"Custom {other}", "custom_inputs": {"temperature": 1.3}})
    sent = next(r for r in httpx.get(f"{scripted.url}/scripted/requests").json() if other in json.dumps(r))
    assert sent["settings"]["temperature"] == 1.3
    bad = httpx.post(f"{serving.url}/responses", json={"input": "x", "temperature": 9}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "temperature"


# -- hosted tools ---------------------------------------------------------------------------------
def test_hosted_tools_pass_through_as_their_own_items(serve: Callable[..., ServerProcess]) -> None:
    server = serve(register("openai_agents_hosted.yaml", "tools-hosted"), "serving-hosted")
    web = responses(server, {"input": "Please search the web for agentship"})
    assert kinds(web) == ["web_search_call", "message"] and web["output"][0]["action"]["query"] == "agentship"
    files = responses(server, {"input": "Please search the files for deployment"})
    assert (
        kinds(files) == ["file_search_call", "message"]
        and files["output"][0]["results"][0]["filename"] == "notes.txt"
    )
    code = responses(server, {"input": "Please run code"})
    assert (
        kinds(code) == ["code_interpreter_call", "message"]
        and code["output"][0]["outputs"][0]["logs"] == "42"
    )
    # MLflow's format has no code_interpreter_call: it is the call and its output there.
    mlflow_face = invocations(server, {"input": "Please run code"})
    assert kinds(mlflow_face) == ["function_call", "function_call_output", "message"]
    assert mlflow_face["output"][0]["name"] == "code_interpreter"
    assert mlflow.get_tracking_uri()  # the traces of hosted calls go where every other trace goes
