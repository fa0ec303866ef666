"""Llama Stack conversations in the state store: another replica (or the same one restarted)
continues a conversation on the same server session or conversation, and users stay apart.
Every server line, with two agent instances over one store."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.llama_stack.conftest import Target
from tests.llama_stack.test_behaviour import ask, last_text

pytestmark = pytest.mark.llamastack


def _asked(target: Target, text: str) -> list[dict[str, Any]]:
    """The messages of the latest model request whose last user message contains ``text``."""
    for entry in reversed(httpx.get(f"{target.scripted.url}/scripted/requests", timeout=10).json()):
        users = [m for m in entry["messages"] if m["role"] == "user"]
        if users and text in users[-1]["text"]:
            return list(entry["messages"])
    raise AssertionError(f"no model request for {text!r}")


def test_another_replica_continues_the_conversation(target: Target, load: Any) -> None:
    first = load(target)
    one = ask(
        first,
        "My name is Zed, remember it",
        "replica-conv",
        context={"conversation_id": "replica-conv", "user_id": "zed"},
    )
    first.close()  # the replica goes away
    second = load(target)  # another one, over the same store
    two = ask(
        second,
        "What was my name again?",
        "replica-conv",
        context={"conversation_id": "replica-conv", "user_id": "zed"},
    )
    assert last_text(two) == "You said: What was my name again?"
    assert two.custom_outputs.get("llama_stack_conversation") == one.custom_outputs.get(
        "llama_stack_conversation"
    )
    users = [m["text"] for m in _asked(target, "What was my name again?") if m["role"] == "user"]
    assert any("My name is Zed" in text for text in users), users  # the first turn is in the context
    assert sum("My name is Zed" in text for text in users) == 1  # and only once
    stranger = ask(second, "Who am I?", context={"conversation_id": "replica-conv", "user_id": "eve"})
    assert not any("Zed" in m["text"] for m in _asked(target, "Who am I?"))  # eve's is another conversation
    if one.custom_outputs.get("llama_stack_conversation"):
        assert (
            stranger.custom_outputs.get("llama_stack_conversation")
            != one.custom_outputs["llama_stack_conversation"]
        )
