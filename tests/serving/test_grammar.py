"""One event grammar: a response streamed live and the same response replayed from the store are the
same events, item for item and field for field; every event and body validates strictly against
openai-python's types (the pinned release and the newest on the index).

A live stream carries an item's text in many deltas, and items may interleave (a reasoning item
still open when the message starts); a replay of a stored (foreground) response sends each item
whole, in index order, its text in one delta. So the replay is compared with the live stream put
in that order: each item's events together, its deltas joined. A background run's events are
kept as they were sent, so its replay is the live stream exactly.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from agentship.testing.processes import ServerProcess
from tests.serving.clients import MODEL, PARIS, TOOL_ANSWER, Target, marker
from tests.serving.openai_types import valid_events, valid_response

pytestmark = pytest.mark.e2e

STOCK_TOOL = {
    "type": "function",
    "name": "get_stock_price",
    "description": "The price of a stock.",
    "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}}, "required": ["symbol"]},
}
_DELTAS = ("response.output_text.delta", "response.reasoning_summary_text.delta")
_ENDS = ("response.completed", "response.failed", "response.incomplete")


def sse(reply: httpx.Response) -> list[dict[str, Any]]:
    names, events = [], []
    for line in reply.iter_lines():
        if line.startswith("event:"):
            names.append(line[6:].strip())
        elif line.startswith("data:"):
            events.append(json.loads(line[5:]))
    assert names == [e["type"] for e in events]
    return valid_events(events)


def live(server: ServerProcess, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream(
        "POST", f"{server.url}/responses", json={"model": MODEL, **body, "stream": True}, timeout=60
    ) as reply:
        assert reply.status_code == 200
        return sse(reply)


def replayed(server: ServerProcess, response_id: str, after: int = -1) -> list[dict[str, Any]]:
    url = f"{server.url}/responses/{response_id}?stream=true&starting_after={after}"
    with httpx.stream("GET", url, timeout=60) as reply:
        assert reply.status_code == 200
        return sse(reply)


def joined(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``events`` with each item's events together in index order (the response's own events
    first and last, where they are), each run of an item's text deltas joined, renumbered."""
    head = [e for e in events if "output_index" not in e and e["type"] not in _ENDS]
    items = sorted((e for e in events if "output_index" in e), key=lambda e: e["output_index"])
    ends = [e for e in events if e["type"] in _ENDS]
    assert len(head) + len(items) + len(ends) == len(events)  # nothing left out
    out: list[dict[str, Any]] = []
    for event in [*head, *items, *ends]:
        last = out[-1] if out else None
        if (
            event["type"] in _DELTAS
            and last is not None
            and last["type"] == event["type"]
            and last["item_id"] == event["item_id"]
        ):
            last["delta"] += event["delta"]
        else:
            out.append(dict(event))
    return [{**event, "sequence_number": n} for n, event in enumerate(out)]


def test_a_tool_answer_replays_as_it_streamed_live(target: Target) -> None:
    events = live(target.server, {"input": f"What is the weather in Paris? {marker()}"})
    final = valid_response(events[-1]["response"])
    assert [item["type"] for item in final["output"]] == target.types("mcp_call", "message")
    assert next(i for i in final["output"] if i["type"] == "mcp_call")["output"] == PARIS
    assert final["output"][-1]["content"][0]["text"] == TOOL_ANSWER
    assert replayed(target.server, final["id"]) == joined(events)
    stored = httpx.get(f"{target.url}/responses/{final['id']}", timeout=10).json()
    assert valid_response(stored) == final


def test_a_client_tools_call_stays_a_function_call_when_replayed(serving: ServerProcess) -> None:
    """A call the client runs is the client's in the replay too: a function_call, never an
    mcp_call the server failed to run."""
    events = live(serving, {"input": "What is the stock price of ACME?", "tools": [STOCK_TOOL]})
    final = events[-1]["response"]
    (call,) = final["output"]
    assert (call["type"], call["name"], call["status"], json.loads(call["arguments"])) == (
        "function_call",
        "get_stock_price",
        "completed",
        {"symbol": "ACME"},
    )
    replay = replayed(serving, final["id"])
    assert replay == joined(events)
    assert [e["type"] for e in replay] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]


def _without_ids(response: dict[str, Any]) -> dict[str, Any]:
    """A response with what differs between two runs of one request left out: ids and times."""
    items = [{k: v for k, v in item.items() if k not in ("id", "call_id")} for item in response["output"]]
    return {**{k: v for k, v in response.items() if k not in ("id", "created_at")}, "output": items}


def test_a_whole_answer_is_the_streamed_answer(serving: ServerProcess) -> None:
    body = {"model": MODEL, "input": "What is the weather in Paris?"}
    whole = valid_response(httpx.post(f"{serving.url}/responses", json=body, timeout=60).json())
    streamed = live(serving, {"input": "What is the weather in Paris?"})[-1]["response"]
    assert _without_ids(whole) == _without_ids(streamed)


def test_a_background_run_replays_exactly_as_it_streamed(serving: ServerProcess) -> None:
    events = live(serving, {"input": "What is the weather in Paris? [[chunks=6]]", "background": True})
    assert [(e["type"], e["response"]["status"]) for e in events[:3]] == [
        ("response.created", "queued"),
        ("response.queued", "queued"),
        ("response.in_progress", "in_progress"),
    ]
    assert events[-1]["type"] == "response.completed"
    assert replayed(serving, events[0]["response"]["id"]) == events
    assert replayed(serving, events[0]["response"]["id"], after=4) == events[5:]
