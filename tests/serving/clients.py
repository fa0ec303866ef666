"""What the client tests share: the served agents they talk to and what those must answer.

Each client runs against two real ``python -m serving`` processes in front of the scripted
model: one whose model answers plainly, and one whose model streams a reasoning summary before
every answer (as reasoning models do), so items finish out of the order they started in.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from openai.types.conversations import ConversationItem

from agentship.testing.processes import ServerProcess

MODEL = "agent-under-test"
"""The model name the clients ask for; /responses echoes it."""
PARIS = "The weather in Paris is 18°C and sunny."
TOOL_ANSWER = f"The get_weather tool returned: {PARIS}"


@dataclass(frozen=True)
class Target:
    """A served agent and its scripted model."""

    name: str
    server: ServerProcess
    scripted: ServerProcess
    reasoning: bool

    @property
    def url(self) -> str:
        return self.server.url

    def types(self, *kinds: str) -> list[str]:
        """The output item types the agent gives for model turns producing ``kinds``."""
        return [k for kind in kinds for k in ((["reasoning"] if self.reasoning else []) + [kind])]

    def model_saw(self, text: str) -> list[dict[str, Any]]:
        """The messages of the latest model request whose last user message contains ``text``."""
        recorded = httpx.get(f"{self.scripted.url}/scripted/requests", timeout=10).json()
        for entry in reversed(recorded):
            users = [m for m in entry["messages"] if m["role"] == "user"]
            if users and text in users[-1]["text"]:
                return list(entry["messages"])
        raise AssertionError(f"the model never received a turn containing {text!r}")


def marker() -> str:
    return f"m{time.time_ns()}"


def assert_history_reached_the_model(target: Target, mark: str, tool_output_sent: bool = True) -> None:
    """The second turn's model request carries the first turn: the question and the tool's answer."""
    seen = target.model_saw(f"{mark}-second")
    assert any(m["role"] == "user" and f"Paris? {mark}" in m["text"] for m in seen), seen
    assert any(m["role"] == "assistant" and m["text"] == TOOL_ANSWER for m in seen), seen
    if tool_output_sent:
        assert any(m["role"] == "tool" and m["text"] == PARIS for m in seen), seen
    assert [m["text"] for m in seen].count(TOOL_ANSWER) == 1  # no duplicated turn


def run_node(directory: Path, script: str, *args: str) -> dict[str, Any]:
    """Run a script of ``tests/serving/node/`` (from the ``node_clients`` directory): the JSON it
    prints last."""
    done = subprocess.run(
        ["node", script, *args], cwd=directory, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-4000:]}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- the Conversations API's items, as the wire has them ---------------------------------------------
CONVERSATION_ID = re.compile(r"conv_[0-9a-f]{48}")
"""The form of the ids the server gives its conversations."""


def shown(item: ConversationItem) -> dict[str, Any]:
    """An item as the wire has it, without its id (checked on its own)."""
    return {k: v for k, v in item.model_dump(exclude_unset=True).items() if k != "id"}


def listed_user(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_text", "text": text}],
    }


def listed_assistant(text: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}]
    return {"type": "message", "role": "assistant", "status": "completed", "content": content}


def answered(text: str) -> dict[str, Any]:
    """The agent's answer as its turn left it in the conversation (the SDK keeps the model's
    ``logprobs``, none here)."""
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "role": "assistant", "status": "completed", "content": content}
