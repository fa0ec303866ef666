"""A Llama Stack conversation keeps no part of a turn that did not finish (issue 20, item 6).

Against every real server line and the chat-completions fallback: a turn that has called a
client tool (so the server's session or conversation holds the user's message and the tool
call) is cut short by the client going away; the next turn's model request holds the turns
that succeeded, and nothing of the cut one. Before, the server's session kept the user message
and a tool call without its result, and every later turn sent them to the model.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.llama_stack.conftest import Target
from tests.llama_stack.test_behaviour import ask, last_text

pytestmark = pytest.mark.llamastack


def _model_saw(target: Target, text: str) -> list[tuple[str, str]]:
    """(role, text) of the latest model request whose last user message is ``text``."""
    for entry in reversed(httpx.get(f"{target.scripted.url}/scripted/requests", timeout=10).json()):
        users = [m for m in entry["messages"] if m["role"] == "user"]
        if users and users[-1]["text"] == text:
            return [(m["role"], m["text"]) for m in entry["messages"]]
    raise AssertionError(f"no model request for {text!r}")


def test_a_turn_cut_short_leaves_nothing_of_itself_in_the_conversation(target: Target, load: Any) -> None:
    agent = load(target)
    m = uuid.uuid4().hex[:8]
    conversation = {"conversation_id": f"cut-{m}"}
    ask(agent, f"hello {m}", context=conversation)
    stream = agent.predict_stream(
        {
            "input": [{"role": "user", "content": f"What is the weather in Paris? {m} [[latency=3]]"}],
            "context": conversation,
        }
    )
    for event in stream:
        item = getattr(event, "item", None) or {}
        if event.type == "response.output_item.done" and item.get("type") == "function_call_output":
            break  # the tool has run: the server holds the message and the call
    stream.close()  # the client goes away before the answer
    after = ask(agent, f"after {m}", context=conversation)
    assert last_text(after) == f"You said: after {m}"
    seen = _model_saw(target, f"after {m}")
    if target.mode_prefix.startswith("agents"):  # a fresh session: the earlier turns as a transcript
        earlier = f"Earlier in this conversation:\nuser: hello {m}\nassistant: You said: hello {m}"
        assert seen == [("system", "You are terse."), ("user", earlier), ("user", f"after {m}")]
    else:
        assert seen == [
            ("system", "You are terse."),
            ("user", f"hello {m}"),
            ("assistant", f"You said: hello {m}"),
            ("user", f"after {m}"),
        ]
    again = ask(agent, f"again {m}", context=conversation)  # and it goes on from there
    assert last_text(again) == f"You said: again {m}"
    assert ("user", f"after {m}") in _model_saw(target, f"again {m}")
