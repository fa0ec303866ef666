"""Request checks and input-item helpers shared by every backend. Pure functions."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pydantic
from mlflow.types.responses import ResponsesAgentRequest

from agentship.errors import InvalidRequestError


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("Message", "OutputItem") or "function-after" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "request"


def _normalize_item(index: int, item: Any) -> Any:
    """Accept assistant output messages that came back from a client without their ids."""
    if (
        isinstance(item, dict)
        and item.get("role") == "assistant"
        and isinstance(item.get("content"), list)
        and not item.get("id")
        and any(isinstance(p, dict) and p.get("type") == "output_text" for p in item["content"])
    ):
        return {**item, "id": f"msg_input_{index}", "type": "message"}
    return item


def parse_request(data: Any) -> ResponsesAgentRequest:
    """Validate a request body; raise :class:`InvalidRequestError` naming the bad field."""
    if isinstance(data, ResponsesAgentRequest):
        request = data
    else:
        if not isinstance(data, dict):
            raise InvalidRequestError(
                f"request must be a JSON object with an 'input' list, got {type(data).__name__}"
            )
        if "input" not in data:
            raise InvalidRequestError("request is missing the required field 'input'")
        raw_input = data["input"]
        if isinstance(raw_input, str):
            raw_input = [{"role": "user", "content": raw_input}]
        if not isinstance(raw_input, list):
            raise InvalidRequestError("'input' must be a list of Responses input items")
        data = {**data, "input": [_normalize_item(i, item) for i, item in enumerate(raw_input)]}
        try:
            request = ResponsesAgentRequest.model_validate(data)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            message = str(first["msg"]).removeprefix("Value error, ")
            raise InvalidRequestError(
                f"invalid request: {_loc(tuple(first['loc']))}: {message}"
                + (f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else "")
            ) from exc
    if not request.input:
        raise InvalidRequestError("'input' must contain at least one item")
    return request


def content_text(content: Any) -> str:
    """The text of a message content: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    parts = []
    for part in content or []:
        text = part.get("text") if isinstance(part, dict) else getattr(part, "text", None)
        if text is None:
            text = part.get("refusal") if isinstance(part, dict) else getattr(part, "refusal", None)
        if text is not None:
            parts.append(str(text))
    return "".join(parts)


def new_item_id(prefix: str) -> str:
    """A fresh output item id, e.g. ``msg_3f2a…``."""
    return f"{prefix}_{uuid4().hex[:24]}"


def input_dicts(request: ResponsesAgentRequest) -> list[dict[str, Any]]:
    return [item.model_dump(exclude_none=True) for item in request.input]


_NEW_TURN_ROLES = frozenset({"user", "system", "developer"})


def new_turn(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The new turn at the end of a conversation's input: the trailing run of user, system and
    developer messages (or, if the input ends otherwise, its last item).

    With server-side conversation state this is all a turn adds: a client that resends the
    whole history gets no duplicated turns.
    """
    index = len(items)
    while index > 0 and items[index - 1].get("type", "message") == "message":
        if items[index - 1].get("role") not in _NEW_TURN_ROLES:
            break
        index -= 1
    return items[index:] if index < len(items) else items[-1:]
