"""MCP tool results are the tool's text: in the response's ``function_call_output`` (MLflow's
format), in the trace's TOOL span, and for the model, in the same shape on the live turn and when
the history is sent back. In process: the real Agents SDK runner, real MCP servers
(``mcp-server-time`` over stdio, the docs server over streamable HTTP), the scripted model.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
import yaml
from mlflow.entities import SpanType
from mlflow.pyfunc import PythonModelContext

from agents import set_trace_processors
from agentship.openai_agents import OpenAIAgentsBackend, parse_config, tracing
from agentship.responses_agent import AgentBackend, AgentshipResponsesAgent
from agentship.testing.processes import ServerProcess
from tests.conftest import REPO
from tests.serving.clients import marker
from tests.serving.mcp_servers import start_docs_server

DOCS_TOKEN = "docs-TOKEN-inproc"
BUNDLE = (
    "Bundle on Tracing:\nTraces are kept in MLflow.\n[image: image/png, 64 bytes]\nTracing: see the README."
)


class _Agent(AgentshipResponsesAgent):
    def __init__(self, environ: dict[str, str]) -> None:
        super().__init__()
        self.environ = environ

    def build_backend(self, model_config: Any) -> AgentBackend:
        return OpenAIAgentsBackend(parse_config(dict(model_config)), self.environ)


@pytest.fixture(scope="module")
def docs_mcp(log_dir: Path) -> Iterator[ServerProcess]:
    server = start_docs_server(log_dir, DOCS_TOKEN)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def agent(scripted: ServerProcess, docs_mcp: ServerProcess) -> Iterator[_Agent]:
    config = yaml.safe_load((REPO / "agentship" / "configs" / "openai_agents_mcp.yaml").read_text())
    config["mcp_servers"][0]["command"] = str(Path(sys.executable).parent / "mcp-server-time")
    environ = {
        "OPENAI_BASE_URL": scripted.url + "/v1",
        "OPENAI_API_KEY": "unused",
        "AGENTSHIP_STATE_URL": "none",
        "DOCS_MCP_URL": f"{docs_mcp.url}/mcp",
        "DOCS_MCP_TOKEN": DOCS_TOKEN,
    }
    set_trace_processors([tracing.install()])
    loaded = _Agent(environ)
    loaded.load_context(PythonModelContext({}, config))
    yield loaded
    loaded.close()
    set_trace_processors([])


def _model_requests(scripted: ServerProcess, mark: str) -> list[dict[str, Any]]:
    return [
        r for r in httpx.get(f"{scripted.url}/scripted/requests").json() if mark in json.dumps(r["messages"])
    ]


def _check_time(text: str) -> None:
    """mcp-server-time's own text: its JSON, indented by two."""
    value = json.loads(text)
    assert text == json.dumps(value, indent=2)
    assert list(value) == ["timezone", "datetime", "day_of_week", "is_dst"]
    assert value["timezone"] == "Europe/Paris"
    assert value["day_of_week"] == datetime.fromisoformat(value["datetime"]).strftime("%A")


@pytest.mark.parametrize(
    ("question", "tool", "expected"),
    [
        ("What is the current time in Europe/Paris?", "get_current_time", None),  # stdio
        (
            "Please look in the docs about Deployment",
            "lookup_docs",
            "The docs on Deployment say: deploy with python -m serving.",
        ),
        ("Please send the bundle about Tracing", "fetch_bundle", BUNDLE),  # several blocks, an image
    ],
    ids=["stdio", "streamable-http", "several-blocks"],
)
def test_an_mcp_result_is_the_tools_text_live_in_the_trace_and_replayed(
    agent: _Agent, scripted: ServerProcess, question: str, tool: str, expected: str | None
) -> None:
    mlflow.set_experiment("mcp-tool-text")
    mark = marker()
    asked = [{"role": "user", "content": f"{question} {mark}"}]
    output = [o.model_dump(exclude_none=True) for o in agent.predict({"input": asked}).output]
    assert [o["type"] for o in output] == ["function_call", "function_call_output", "message"]
    call, result, answer = output
    assert (call["name"], call["server_label"]) == (tool, "time" if tool == "get_current_time" else "docs")
    text = result["output"]
    if expected is None:
        _check_time(text)
    else:
        assert text == expected
    assert result == {"type": "function_call_output", "call_id": call["call_id"], "output": text}
    assert answer["content"][0]["text"] == f"The {tool} tool returned: {text}"

    live = _model_requests(scripted, mark)
    assert [r["tool_results"] for r in live] == [[], [text]]  # a string on the live turn, not parts

    mlflow.flush_trace_async_logging()
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    assert trace is not None
    [span] = [s for s in trace.data.spans if s.span_type == SpanType.TOOL]
    # MLflow's SQL store un-nests an attribute holding JSON text (``sanitize_attributes`` in
    # mlflow/tracing/otel/translation): the time server's JSON text comes back as its object.
    stored = json.loads(text) if expected is None else text
    assert (span.name, span.inputs, span.outputs) == (tool, json.loads(call["arguments"]), stored)
    assert span.attributes["gen_ai.tool.call.id"] == call["call_id"]

    again = marker()
    history = [*asked, call, result, {"role": "user", "content": f"Thanks {again}"}]
    agent.predict({"input": history})
    [replayed] = _model_requests(scripted, again)
    assert replayed["tool_results"] == [text]  # the same shape when the history comes back
