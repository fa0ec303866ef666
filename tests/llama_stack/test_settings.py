"""Per-request settings on the Llama Stack agent: honoured where the mode can (the OpenAI-style
modes run on the Agents SDK), a 400 naming the field where it cannot (the Agents API fixes its
sampling when the agent is created); never silent loss."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from agentship.errors import InvalidRequestError
from tests.llama_stack.conftest import Target
from tests.llama_stack.test_behaviour import ask, last_text

pytestmark = pytest.mark.llamastack


def _sent(target: Target, text: str) -> dict[str, Any]:
    for entry in reversed(httpx.get(f"{target.scripted.url}/scripted/requests", timeout=10).json()):
        if text in json.dumps(entry["messages"]):
            return dict(entry["settings"])
    raise AssertionError(f"the model never saw {text!r}")


def test_sampling_per_request(target: Target, load: Any) -> None:
    agent = load(target)
    if target.name.startswith("agents"):
        with pytest.raises(InvalidRequestError, match="'temperature' cannot be set per request"):
            ask(agent, "warm please", temperature=0.9)
        return
    ask(agent, "warm please", temperature=0.9, max_output_tokens=33)
    sent = _sent(target, "warm please")
    assert sent["temperature"] == 0.9
    assert 33 in (sent.get("max_tokens"), sent.get("max_output_tokens"), sent.get("max_completion_tokens"))


def test_structured_output_per_request(target: Target, load: Any) -> None:
    agent = load(target)
    fmt = {
        "format": {
            "type": "json_schema",
            "name": "v",
            "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    }
    if target.name.startswith("agents"):
        with pytest.raises(InvalidRequestError, match=r"'text\.format' is not supported"):
            agent.predict({"input": "Where is Lima?", "text": fmt})
        return
    assert json.loads(last_text(agent.predict({"input": "Where is Lima?", "text": fmt}))) == {"city": "Lima"}


def test_request_tools_are_refused_by_name(target: Target, load: Any) -> None:
    agent = load(target)
    tool = {"type": "function", "name": "x", "parameters": {"type": "object", "properties": {}}}
    with pytest.raises(InvalidRequestError, match="'tools' cannot be declared per request"):
        ask(agent, "hi", tools=[tool])
