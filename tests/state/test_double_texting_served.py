"""Double-texting policies end to end (issue 23): real ``python -m serving`` replicas over one state
store (a real PostgreSQL with two replicas, or the SQLite default with ``-w 2``), in front of the
scripted model. A conversation's first turn streams slowly on one replica; a second message of
the same conversation arrives mid-stream on the other, with each policy:

* ``reject``: a 409 ``conversation_busy``; the first turn completes, and the second message is
  in no history;
* ``enqueue`` (the default; here through the ``metadata`` key): the second turn waits, then runs
  after the whole first turn;
* ``interrupt``: the first turn ends ``incomplete`` with what it had said, which the conversation
  keeps (the second turn's model input holds it, as an assistant message);
* ``rollback``: the first turn ends ``cancelled``, and the conversation holds only the second.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from agentship.testing.processes import ServerProcess
from tests.state.served import Cluster, in_background, mark, model_users

pytestmark = pytest.mark.e2e

EVENT = TypeAdapter(ResponseStreamEvent)
HEADER = "Agentship-Double-Texting"
SLOW = "[[latency=6 chunks=12 words=20]]"


def model_messages(scripted: ServerProcess, needle: str) -> list[list[tuple[str, str]]]:
    """(role, text) of every message of each model request whose latest user message holds ``needle``."""
    seen = []
    for entry in httpx.get(f"{scripted.url}/scripted/requests", timeout=10).json():
        users = [m["text"] for m in entry["messages"] if m["role"] == "user"]
        if users and needle in users[-1]:
            seen.append([(m["role"], m["text"]) for m in entry["messages"] if m["role"] != "system"])
    return seen


def first_turn_then(cluster: Cluster, conversation: str, text: str, second: Any) -> tuple[list[Any], Any]:
    """Stream the conversation's first turn on replica a; once its first text arrived, run
    ``second`` on a thread. (the first turn's events, validated; what ``second`` returned)"""
    body = {"model": "agent", "input": text, "conversation": conversation, "stream": True}
    events: list[Any] = []
    pending = None
    with httpx.stream("POST", f"{cluster.a.url}/responses", json=body, timeout=120) as reply:
        assert reply.status_code == 200, reply.read()
        for line in reply.iter_lines():
            if not line.startswith("data:"):
                continue
            events.append(EVENT.validate_json(line[5:].strip()))
            if pending is None and events[-1].type == "response.output_text.delta":
                pending = in_background(second)
    assert pending is not None, "the first turn streamed no text"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    return events, pending()


def send(server: ServerProcess, conversation: str, text: str, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", {})
    body = {"model": "agent", "input": text, "conversation": conversation, **extra}
    return httpx.post(f"{server.url}/responses", json=body, headers=headers, timeout=120)


def streamed_text(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def test_reject_refuses_a_message_while_a_turn_runs(cluster: Cluster, scripted: ServerProcess) -> None:
    m = mark()
    conversation, first, second = f"dt-{m}", f"first {m} {SLOW}", f"second {m}"
    events, refused = first_turn_then(
        cluster,
        conversation,
        first,
        lambda: send(cluster.b, conversation, second, headers={HEADER: "reject"}),
    )
    assert refused.status_code == 409, refused.text
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "error": {
            "message": "a turn of this conversation is running, and this request's double-texting "
            "policy is reject; retry once it ended",
            "type": "invalid_request_error",
            "param": None,
            "code": "conversation_busy",
        }
    }
    final = OpenAIResponse.model_validate(events[-1].response.model_dump())
    assert (events[-1].type, final.status) == ("response.completed", "completed")
    assert final.output_text == streamed_text(events)
    assert model_users(scripted, f"second {m}") == []
    third = send(cluster.b, conversation, f"third {m}")
    assert third.status_code == 200, third.text
    assert model_messages(scripted, f"third {m}") == [
        [("user", first), ("assistant", final.output_text), ("user", f"third {m}")]
    ]
    bad = send(cluster.a, conversation, f"bad {m}", headers={HEADER: "later"})
    assert bad.status_code == 400
    assert bad.json()["error"] == {
        "message": f"{HEADER} must be one of enqueue, reject, interrupt, rollback, not 'later'",
        "type": "invalid_request_error",
        "param": HEADER,
        "code": None,
    }
    worse = send(cluster.a, conversation, f"bad {m}", metadata={"agentship_double_texting": "never"})
    assert worse.status_code == 400
    assert worse.json()["error"] == {
        "message": "metadata.agentship_double_texting must be one of enqueue, reject, interrupt, rollback, "
        "not 'never'",
        "type": "invalid_request_error",
        "param": "metadata.agentship_double_texting",
        "code": None,
    }
    assert model_users(scripted, f"bad {m}") == []


def test_enqueue_runs_the_message_after_the_running_turn(cluster: Cluster, scripted: ServerProcess) -> None:
    m = mark()
    conversation, first, second = f"dt-{m}", f"first {m} {SLOW}", f"second {m}"
    metadata = {"agentship_double_texting": "enqueue"}
    events, queued = first_turn_then(
        cluster, conversation, first, lambda: send(cluster.b, conversation, second, metadata=metadata)
    )
    assert queued.status_code == 200, queued.text
    answer = OpenAIResponse.model_validate(queued.json())
    assert (answer.status, answer.output_text, answer.metadata) == (
        "completed",
        f"You said: {second}",
        metadata,
    )
    final = events[-1].response
    assert (events[-1].type, final.status) == ("response.completed", "completed")
    assert answer.created_at >= final.created_at
    assert model_messages(scripted, f"second {m}") == [
        [("user", first), ("assistant", final.output_text), ("user", second)]
    ]


def test_interrupt_stops_the_running_turn_and_keeps_what_it_said(
    cluster: Cluster, scripted: ServerProcess
) -> None:
    m = mark()
    conversation, first, second = f"dt-{m}", f"first {m} {SLOW}", f"second {m}"
    events, after = first_turn_then(
        cluster,
        conversation,
        first,
        lambda: send(cluster.b, conversation, second, headers={HEADER: "interrupt"}),
    )
    assert after.status_code == 200, after.text
    assert OpenAIResponse.model_validate(after.json()).output_text == f"You said: {second}"
    said = streamed_text(events)
    full = model_users(scripted, f"first {m}")
    assert len(full) == 1
    assert events[-1].type == "response.incomplete"
    final = OpenAIResponse.model_validate(events[-1].response.model_dump())
    assert (final.status, final.error, final.incomplete_details) == ("incomplete", None, None)
    assert [(item.type, item.status) for item in final.output] == [("message", "incomplete")]
    assert final.output_text == said
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    echoed = f"You said: first {m}"  # how the whole answer starts (padding words follow)
    assert said and (echoed.startswith(said) or said.startswith(echoed))  # a prefix of the answer
    assert len(deltas) < 12  # cut short: 12 chunks make the whole answer
    stored = httpx.get(f"{cluster.b.url}/responses/{final.id}", timeout=10)
    assert OpenAIResponse.model_validate(stored.json()) == final
    assert model_messages(scripted, f"second {m}") == [
        [("user", first), ("assistant", said), ("user", second)]
    ]


def test_rollback_stops_the_running_turn_and_drops_it(cluster: Cluster, scripted: ServerProcess) -> None:
    m = mark()
    conversation, first, second = f"dt-{m}", f"first {m} {SLOW}", f"second {m}"
    events, after = first_turn_then(
        cluster,
        conversation,
        first,
        lambda: send(cluster.b, conversation, second, headers={HEADER: "rollback"}),
    )
    assert after.status_code == 200, after.text
    assert OpenAIResponse.model_validate(after.json()).output_text == f"You said: {second}"
    assert events[-1].type == "response.failed"
    final = OpenAIResponse.model_validate(events[-1].response.model_dump())
    assert final.status == "cancelled"
    assert final.error is not None
    assert (final.error.code, final.error.message) == (
        "server_error",
        "a newer message of the conversation rolled this turn back; it is not kept",
    )
    assert [(item.type, item.status) for item in final.output] == [("message", "incomplete")]
    assert model_messages(scripted, f"second {m}") == [[("user", second)]]
    third = send(cluster.a, conversation, f"third {m}")
    assert third.status_code == 200, third.text
    assert model_messages(scripted, f"third {m}") == [
        [("user", second), ("assistant", f"You said: {second}"), ("user", f"third {m}")]
    ]
