"""Bad input to the Conversations API is a 4xx that names the problem, in OpenAI's error shape,
against the default ``python -m serving`` (the SQLite store beside MLflow's)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentship.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

ITEM = {"role": "user", "content": "x"}
SEARCH = {
    "type": "web_search_call",
    "id": "ws_1",
    "status": "completed",
    "action": {"type": "search", "query": "q"},
}
CONV = "{conv}"
"""Stands for an existing conversation's id in a case's path."""
CASES: list[tuple[str, str, Any, dict[str, str] | None, int, str, str | None]] = [
    ("POST", "/v1/conversations", {"metadata": {f"k{i}": "v" for i in range(17)}}, None,
     400, "'metadata' may have at most 16 pairs, not 17", "metadata"),
    ("POST", "/v1/conversations", {"metadata": {"k": "v" * 513}}, None,
     400, "'metadata.k' may be at most 512 characters long, not 513", "metadata"),
    ("POST", "/v1/conversations", {"metadata": {"k" * 65: "v"}}, None,
     400, "'metadata' keys may be at most 64 characters long, not 65", "metadata"),
    ("POST", "/v1/conversations", {"metadata": {"k": 1}}, None,
     400, "'metadata.k' input should be a valid string", "metadata"),
    ("POST", "/v1/conversations", {"items": [ITEM] * 21}, None,
     400, "'items' list should have at most 20 items after validation, not 21", "items"),
    ("POST", "/v1/conversations", {"items": [{"type": "message", "role": "user"}]}, None,
     400, "'items[0].content' field required", "items"),
    ("POST", "/v1/conversations", {"items": [SEARCH]}, None,
     400, "'items[0]' is a web_search_call item; a conversation here holds only function_call, "
     "function_call_output, mcp_call, message, reasoning items (and item references)", "items"),
    ("POST", "/v1/conversations", {"items": "hi"}, None, 400, "'items' input should be a valid list", "items"),
    ("POST", "/v1/conversations", [], None, 400, "the request body must be a JSON object, not list", None),
    ("POST", f"/v1/conversations/{CONV}", {}, None,
     400, "the request is missing the required field 'metadata'", "metadata"),
    ("POST", f"/v1/conversations/{CONV}/items", {"items": []}, None,
     400, "'items' list should have at least 1 item after validation, not 0", "items"),
    ("POST", f"/v1/conversations/{CONV}/items", {"items": [{"type": "item_reference", "id": "msg_nope"}]}, None,
     400, "'items[0]' is an item_reference to 'msg_nope', which is not a stored item of this user (it may "
     "have expired, or been sent with store: false)", "items"),
    ("GET", f"/v1/conversations/{CONV}/items", None, {"order": "sideways"},
     400, "'order' must be 'asc' or 'desc'", "order"),
    ("GET", f"/v1/conversations/{CONV}/items", None, {"limit": "0"}, 400, "'limit' must be between 1 and 100", "limit"),
    ("GET", f"/v1/conversations/{CONV}/items", None, {"limit": "x"}, 400, "'limit' must be an integer", "limit"),
    ("GET", f"/v1/conversations/{CONV}/items", None, {"include": "bogus"},
     400, "'include' has unknown values: bogus", "include"),
    ("GET", f"/v1/conversations/{CONV}/items", None, {"after": "nope"},
     400, "'after' is not an item of this conversation: 'nope'", "after"),
    ("GET", f"/v1/conversations/{CONV}/items", None, {"user": "a\x01b"},
     400, "the request's user must not contain control characters", "user"),
    ("GET", "/v1/conversations/not-an-id", None, None,
     404, "Conversation with id 'not-an-id' not found.", "conversation_id"),
    ("POST", "/v1/responses", {"input": "hi", "conversation": "conv_" + "0" * 48}, None,
     404, f"Conversation with id 'conv_{'0' * 48}' not found.", "conversation"),
]  # fmt: skip


@pytest.fixture(scope="module")
def conversation(serving: ServerProcess) -> str:
    reply = httpx.post(f"{serving.url}/v1/conversations", json={"items": [ITEM]}, timeout=30)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


@pytest.mark.parametrize(("method", "path", "body", "query", "status", "message", "param"), CASES)
def test_bad_input_is_a_4xx_naming_the_problem(
    serving: ServerProcess,
    conversation: str,
    method: str,
    path: str,
    body: Any,
    query: dict[str, str] | None,
    status: int,
    message: str,
    param: str | None,
) -> None:
    url = serving.url + path.replace(CONV, conversation)
    reply = httpx.request(method, url, json=body, params=query, timeout=30)
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    assert (reply.status_code, reply.json()) == (status, {"error": error})


def test_a_body_that_is_not_json_is_a_400(serving: ServerProcess) -> None:
    reply = httpx.post(f"{serving.url}/v1/conversations", content=b"{not json", timeout=30)
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == (
        "the request body is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"
    )


def test_nothing_bad_input_touched_was_written(serving: ServerProcess, conversation: str) -> None:
    """The refused writes above left the conversation as it was made."""
    reply = httpx.get(f"{serving.url}/v1/conversations/{conversation}/items", timeout=30)
    assert [(i["role"], i["content"]) for i in reply.json()["data"]] == [
        ("user", [{"type": "input_text", "text": "x"}])
    ]
    assert httpx.get(f"{serving.url}/v1/conversations/{conversation}", timeout=30).json()["metadata"] == {}
