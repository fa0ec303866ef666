"""The playground page (``/playground``) in headless chromium against a live ``python -m serving``
over the scripted model: what a person sees as they type, wait, approve and reject.

One server has bearer keys on and its state store (the page asks for the key and chains
responses with ``previous_response_id``); one runs with ``--state-url none`` (the page keeps the
conversation and sends it again). The scripted model streams every answer in six pieces, with a
reasoning summary first, so the page is seen mid-stream.

``AGENTSHIP_PLAYGROUND_PNG=docs/playground.png`` makes the approval test save its picture of the
page (a tool call done, an approval waiting) there: the README's and the docs' picture.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
from mlflow import MlflowClient

from agentship.testing.mlflow_ui import play
from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env
from tests.e2e.helpers import REPO, run_log_agent, wait_for_traces
from tests.serving.clients import PARIS, TOOL_ANSWER

pytestmark = pytest.mark.e2e

KEY = "play-KEY-1"
MODEL = "models:/playground-agent/1"
EXPERIMENT = "playground-traces"
WEATHER = "What is the weather in Paris?"
REASONING = "The user wrote 6 words; deciding how to answer."
PACE = {"chunks": 6, "latency": 0.6, "reason": True}
"""The scripted model's pace while these tests run: each answer in six pieces over 0.6 s, after a
reasoning summary."""
SCREENSHOT_ENV = "AGENTSHIP_PLAYGROUND_PNG"
NO_KEY = "You didn't provide an API key: send it as 'Authorization: Bearer KEY'."
WRONG_KEY = "Incorrect API key provided."
REFUSED = "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
TRACE_ID = re.compile(r"tr-[0-9a-f]{32}")
REJECTED_BY_MODEL = "[[fail=400]]"
"""A directive: the scripted model answers this message with HTTP 400."""
MODEL_REFUSAL = (
    "the model backend rejected the request as invalid (HTTP 400); the conversation may be too long "
    "for the model, or an input is not supported"
)


@dataclass(frozen=True)
class Servers:
    keyed: ServerProcess
    """Bearer keys on, its own state store, ``--mlflow-ui-url`` set."""
    stateless: ServerProcess
    """``--state-url none``, no key, no MLflow UI known."""
    ui: str
    """The MLflow UI address the keyed server links traces to."""


@pytest.fixture(scope="module")
def approvals_model() -> str:
    config = REPO / "configs" / "openai_agents_approvals.yaml"
    logged = run_log_agent(
        "--agent", "openai-agents", "--config", str(config), "--registered-model-name", "playground-agent"
    )  # fmt: skip
    assert logged.returncode == 0, logged.stderr
    return MODEL


@pytest.fixture(scope="module")
def servers(
    approvals_model: str, scripted: ServerProcess, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    ui = f"http://127.0.0.1:{free_port()}"  # where an MLflow UI would be: the page only links it
    state = tmp_path_factory.mktemp("playground") / "state.db"
    env = venv_env({"OPENAI_BASE_URL": scripted.url + "/v1", "MLFLOW_EXPERIMENT_NAME": EXPERIMENT})

    def start(name: str, *args: str, extra: dict[str, str] | None = None) -> ServerProcess:
        port = free_port()
        command = [sys.executable, "-m", "serving", "-m", approvals_model, "-p", str(port), *args]
        return start_server(
            f"{name}-{port}", command, port=port, log_dir=log_dir, env={**env, **(extra or {})},
            health_path="/ready", timeout=120,
        )  # fmt: skip

    with ThreadPoolExecutor(2) as pool:  # both load the model at once
        keyed = pool.submit(
            start, "playground-keyed", "--state-url", f"sqlite:///{state}", "--mlflow-ui-url", ui,
            extra={"AGENTSHIP_API_KEYS": f"tester:{KEY}"},
        )  # fmt: skip
        stateless = pool.submit(start, "playground-stateless", "--state-url", "none")
        started = Servers(keyed.result(), stateless.result(), ui)
    yield started
    started.keyed.stop()
    started.stateless.stop()


@pytest.fixture(scope="module", autouse=True)
def paced(scripted: ServerProcess) -> Iterator[None]:
    before = httpx.post(f"{scripted.url}/scripted/config", json={}, timeout=10).json()
    httpx.post(f"{scripted.url}/scripted/config", json=PACE, timeout=10).raise_for_status()
    yield
    httpx.post(f"{scripted.url}/scripted/config", json={k: before[k] for k in PACE}, timeout=10)


def with_key(key: str = KEY) -> list[dict[str, Any]]:
    return [
        {"waitFor": "#key-panel:not([hidden])"},
        {"fill": "API key", "text": key},
        {"click": "Use key"},
        {"waitFor": "#key-panel[hidden]"},
    ]


def ask(question: str, turns: int) -> list[dict[str, Any]]:
    """Send ``question`` and wait until the page's ``turns``-th agent turn has ended."""
    return [
        {"fill": "Message", "text": question},
        {"click": "Send"},
        {"waitFor": ".turn.agent[data-status]", "count": turns},
    ]


def grew(texts: list[str], final: str) -> bool:
    """Whether an element showed ``final`` piece by piece: several steps, each one's text
    starting with the one before."""
    steps = [t for t in texts if t]
    return (
        len(steps) >= 3 and steps[-1] == final and all(b.startswith(a) for a, b in itertools.pairwise(steps))
    )


def test_the_page_asks_for_the_key_then_streams_the_answer_and_the_tool_call(
    servers: Servers, ui_tools: Path, tmp_path: Path
) -> None:
    url = f"{servers.keyed.url}/playground"
    page = httpx.get(url, timeout=10)  # the page itself is served without a key; the API is not
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    refused = httpx.post(f"{servers.keyed.url}/v1/responses", json={"input": WEATHER}, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["message"] == NO_KEY

    steps = [
        {"waitFor": "#key-panel:not([hidden])"},
        {"read": "no_key", "css": "#key-error"},
        {"enabled": "composer_before", "css": "#question"},
        {"fill": "API key", "text": "not-the-key"},
        {"click": "Use key"},
        {"waitFor": "#key-error:not(:empty)"},
        {"read": "wrong_key", "css": "#key-error"},
        *with_key()[1:],
        {"read": "about", "css": ".about dd"},
        {"watch": "message", "css": ".turn.agent .message"},
        {"watch": "reasoning", "css": ".turn.agent .reasoning .text"},
        *ask(WEATHER, 1),
        {"attr": "items", "css": ".turn.agent .items > *", "name": "class"},
        {"read": "tool", "css": ".tool .tool-name"},
        {"read": "tool_status", "css": ".tool .tool-status"},
        {"read": "arguments", "css": ".tool .arguments pre"},
        {"read": "result", "css": ".tool .result pre"},
        {"read": "status", "css": ".turn.agent .status"},
        {"read": "trace", "css": ".turn.agent a.trace"},
        {"attr": "trace_href", "css": ".turn.agent a.trace", "name": "href"},
        {"enabled": "composer_after", "css": "#question"},
    ]
    seen = play(ui_tools, url, steps, tmp_path)
    shown, calls = seen["results"], seen["calls"]

    assert shown["no_key"] == [NO_KEY] and shown["wrong_key"] == [WRONG_KEY]
    assert (shown["composer_before"], shown["composer_after"]) == (False, True)
    assert shown["about"] == [MODEL, "stored by the server (previous_response_id)", "linked to the MLflow UI"]
    assert shown["items"] == ["reasoning", "tool", "reasoning", "message"]
    assert (shown["tool"], shown["tool_status"]) == (["get_weather"], ["completed"])
    assert shown["arguments"] == [json.dumps({"city": "Paris"}, indent=2)]
    assert shown["result"] == [PARIS]
    assert shown["status"] == ["completed"]
    # Streamed: the page showed the answer and the reasoning growing, piece by piece.
    [message] = shown["message"]
    assert grew(message, TOOL_ANSWER), message
    assert all(grew(texts, REASONING) for texts in shown["reasoning"]), shown["reasoning"]
    # The trace's link: the request's trace, in the UI the server was told of.
    [trace_text] = shown["trace"]
    trace_id = trace_text.removeprefix("trace ")
    assert trace_text == f"trace {trace_id}" and TRACE_ID.fullmatch(trace_id)
    traces = wait_for_traces(EXPERIMENT, lambda t: t.info.trace_id == trace_id)
    trace = next(t for t in traces if t.info.trace_id == trace_id)
    experiment = MlflowClient().get_experiment_by_name(EXPERIMENT)
    assert experiment is not None and trace.info.experiment_id == experiment.experiment_id
    assert [s.name for s in trace.data.spans if s.name == "get_weather"] == ["get_weather"]
    assert shown["trace_href"] == [
        f"{servers.ui}/#/experiments/{experiment.experiment_id}/traces?selectedEvaluationId={trace_id}"
    ]
    # What the page sent: the key on every call once given, and the question, streamed.
    assert [(c["path"], c["status"], c["authorization"]) for c in calls] == [
        ("/playground/config", 401, None),
        ("/playground/config", 401, "Bearer not-the-key"),
        ("/playground/config", 200, f"Bearer {KEY}"),
        ("/v1/responses", 200, f"Bearer {KEY}"),
    ]
    assert calls[-1]["body"] == {"input": [{"role": "user", "content": WEATHER}], "stream": True}
    assert seen["errors"] == [REFUSED, REFUSED]  # the browser's own note of the two refusals


def test_an_approval_waits_for_the_person_then_the_run_goes_on(
    servers: Servers, ui_tools: Path, tmp_path: Path
) -> None:
    shot = tmp_path / "playground.png"
    steps = [
        *with_key(),
        *ask(WEATHER, 1),
        {"fill": "Message", "text": "Please send email to Bob"},
        {"click": "Send"},
        {"waitFor": ".turn.agent[data-status]", "count": 2},
        {"read": "pending", "css": ".approval[data-status=pending] .approval-head"},
        {"read": "pending_arguments", "css": ".approval .arguments pre"},
        {"enabled": "composer_waits", "css": "#question"},
        {"read": "hint", "css": "#composer-hint"},
        {"read": "paused", "css": ".turn.agent .status"},
        {"screenshot": str(shot), "full": True},
        {"click": "Approve"},
        {"waitFor": ".turn.agent[data-status]", "count": 3},
        *ask("Please send email to Carol", 4),
        {"click": "Reject"},
        {"waitFor": ".turn.agent[data-status]", "count": 5},
        {"read": "said", "css": ".turn.user .text"},
        {"read": "decisions", "css": ".approval .decision"},
        {"read": "tools", "css": ".tool .tool-name"},
        {"read": "results", "css": ".tool .result pre"},
        {"read": "answers", "css": ".turn.agent .message"},
        {"read": "statuses", "css": ".turn.agent .status"},
    ]
    seen = play(ui_tools, f"{servers.keyed.url}/playground", steps, tmp_path)
    shown, calls = seen["results"], seen["calls"]

    assert shown["pending"] == ["Approve send_email?"]
    assert shown["pending_arguments"] == [json.dumps({"to": "Bob", "body": "Bob"}, indent=2)]
    assert shown["composer_waits"] is False
    assert shown["hint"] == ["Approve or reject the pending tool call first."]
    assert shown["paused"] == ["completed", "waiting for approval"]
    assert shown["said"] == [
        WEATHER, "Please send email to Bob", "Approved send_email", "Please send email to Carol", "Rejected send_email"
    ]  # fmt: skip
    assert shown["decisions"] == ["Approved", "Rejected"]
    assert shown["tools"] == ["get_weather", "send_email", "send_email"]
    rejected = "The user rejected this tool call."
    assert shown["results"] == [PARIS, "Email sent to Bob.", rejected]
    assert shown["answers"] == [
        TOOL_ANSWER,
        "The send_email tool returned: Email sent to Bob.",
        f"The send_email tool returned: {rejected}",
    ]
    assert shown["statuses"] == ["completed"] * 5
    # One conversation: each request continues the one before; an answer names its request.
    posts = [c for c in calls if c["path"] == "/v1/responses"]
    assert [c["status"] for c in posts] == [200] * 5
    assert "previous_response_id" not in posts[0]["body"]
    chained = [c["body"]["previous_response_id"] for c in posts[1:]]
    assert len(set(chained)) == 4 and all(c.startswith("resp_") for c in chained)
    for post, approve in ((posts[2], True), (posts[4], False)):
        [answer] = post["body"]["input"]
        assert answer == {
            "type": "mcp_approval_response",
            "approval_request_id": answer["approval_request_id"],
            "approve": approve,
        }
        assert answer["approval_request_id"].startswith("mcpr_")
    assert seen["errors"] == [REFUSED]  # the first look for the settings, before the key
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if target := os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, target)


def test_without_the_state_store_the_page_sends_the_whole_conversation(
    servers: Servers, scripted: ServerProcess, ui_tools: Path, tmp_path: Path
) -> None:
    steps = [
        {"waitFor": ".about dd:not(:empty)"},
        *ask(WEATHER, 1),
        *ask("Thanks", 2),
        *ask(f"Hello {REJECTED_BY_MODEL}", 3),
        *ask("Bye", 4),
        {"read": "about", "css": ".about dd"},
        {"read": "answers", "css": ".turn.agent .message"},
        {"read": "statuses", "css": ".turn.agent .status"},
        {"read": "traces", "css": ".turn.agent span.trace"},
        {"read": "links", "css": "a.trace"},
    ]
    seen = play(ui_tools, f"{servers.stateless.url}/playground", steps, tmp_path)
    shown, calls = seen["results"], seen["calls"]

    assert shown["about"] == [
        MODEL, "kept in this page (the server stores nothing)", "trace ids (no MLflow UI known)"
    ]  # fmt: skip
    assert shown["answers"] == [TOOL_ANSWER, "You said: Thanks", "You said: Bye"]
    assert shown["statuses"] == ["completed", "completed", f"failed: {MODEL_REFUSAL}", "completed"]
    assert shown["links"] == [] and len(shown["traces"]) == 3
    assert all(TRACE_ID.fullmatch(t.removeprefix("trace ")) for t in shown["traces"])
    posts = [c["body"] for c in calls if c["path"] == "/v1/responses"]
    call = posts[1]["input"][1]
    assert posts[1] == {
        "input": [
            {"role": "user", "content": WEATHER},
            {
                "id": call["id"], "type": "mcp_call", "server_label": "agent", "name": "get_weather",
                "arguments": json.dumps({"city": "Paris"}), "output": PARIS, "error": None,
            },
            {"role": "assistant", "content": TOOL_ANSWER},
            {"role": "user", "content": "Thanks"},
        ],
        "stream": True,
    }  # fmt: skip
    # A failed turn is not part of the conversation.
    assert posts[3]["input"] == [
        *posts[1]["input"],
        {"role": "assistant", "content": "You said: Thanks"},
        {"role": "user", "content": "Bye"},
    ]
    # The model was given the whole conversation.
    last = httpx.get(f"{scripted.url}/scripted/requests", timeout=10).json()[-1]
    assert [(m["role"], m["text"]) for m in last["messages"][1:]] == [
        ("user", WEATHER), ("assistant", ""), ("tool", PARIS), ("assistant", TOOL_ANSWER), ("user", "Thanks"),
        ("assistant", "You said: Thanks"), ("user", "Bye"),
    ]  # fmt: skip
    assert seen["errors"] == []
    assert mlflow.get_tracking_uri().startswith("sqlite:")  # so the server knows no UI to link
