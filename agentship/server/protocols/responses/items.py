"""Output items between the agent and the Responses wire, as ``openai.types.responses`` models. Pure.

The agent's items are MLflow's Responses items (plain dicts); the wire's are openai-python's
models, made here with exactly the fields the spec defines for them:

* a ``message`` and a ``reasoning`` item keep their text;
* a ``function_call`` of a tool the *client* runs stays a ``function_call``, the client's to run;
* a ``function_call`` of a tool the *server* ran, with its ``function_call_output``, is one
  ``mcp_call`` (arguments and output, under the server's label): every OpenAI client treats it
  as done server-side;
* an ``mcp_approval_request`` is OpenAI's, with no field it lacks;
* a hosted tool's call (``web_search_call``, …) is validated as the spec's item.

:func:`agent_items` goes the other way, for items a client sends back as input.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pydantic
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputItem,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseUsage,
)
from openai.types.responses.response_output_item import McpApprovalRequest, McpCall
from openai.types.responses.response_reasoning_item import Summary
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from agentship.server.core.errors import invalid

_logger = logging.getLogger("agentship.server")

OUTPUT_ITEM: pydantic.TypeAdapter[ResponseOutputItem] = pydantic.TypeAdapter(ResponseOutputItem)
DEFAULT_LABEL = "agent"


# -- reading wire items -----------------------------------------------------------------------------
def text_of(item: ResponseOutputItem) -> str:
    """A message's text, or a reasoning item's summary text ("" for other items)."""
    if isinstance(item, ResponseOutputMessage):
        return "".join(p.text if isinstance(p, ResponseOutputText) else p.refusal for p in item.content)
    if isinstance(item, ResponseReasoningItem):
        return "".join(s.text for s in item.summary)
    return ""


def shell_of(final: ResponseOutputItem) -> ResponseOutputItem:
    """The form an item opens with, before its content arrives."""
    if isinstance(final, ResponseOutputMessage):
        return final.model_copy(update={"status": "in_progress", "content": []})
    if isinstance(final, ResponseReasoningItem):
        return final.model_copy(update={"summary": []})
    if isinstance(final, ResponseFunctionToolCall):
        return final.model_copy(update={"arguments": "", "status": "in_progress"})
    if isinstance(final, McpCall):
        return final.model_copy(update={"output": None, "error": None, "status": "in_progress"})
    if "status" in type(final).model_fields:
        return final.model_copy(update={"status": "in_progress"})
    return final


def known_fields(item: ResponseOutputItem) -> ResponseOutputItem:
    """``item`` without fields the spec does not define for it (a validated dict may bring some)."""
    if not item.model_extra:
        return item
    values = item.model_dump(exclude=set(item.model_extra), exclude_unset=True, by_alias=True)
    return OUTPUT_ITEM.validate_python(values)


# -- the agent's items as wire items ----------------------------------------------------------------
def message_item(raw: dict[str, Any], item_id: str, status: str = "completed") -> ResponseOutputMessage:
    content: list[ResponseOutputText | ResponseOutputRefusal] = []
    for part in raw.get("content") or []:
        if isinstance(part, dict) and part.get("type") == "refusal":
            content.append(ResponseOutputRefusal(type="refusal", refusal=str(part.get("refusal") or "")))
        elif isinstance(part, dict):
            annotations = part.get("annotations") or []
            content.append(
                ResponseOutputText(
                    type="output_text", text=str(part.get("text") or ""), annotations=annotations
                )
            )
    return ResponseOutputMessage(
        type="message",
        id=item_id,
        role="assistant",
        status=status,
        content=content,  # type: ignore[arg-type]
    )


def reasoning_item(raw: dict[str, Any], item_id: str) -> ResponseReasoningItem:
    parts = raw.get("summary") or raw.get("content") or []
    text = "".join(str(p.get("text") or "") for p in parts if isinstance(p, dict))
    summary = [Summary(type="summary_text", text=text)] if text else []
    return ResponseReasoningItem(type="reasoning", id=item_id, summary=summary)


def client_call(raw: dict[str, Any]) -> ResponseFunctionToolCall:
    call_id = str(raw.get("call_id"))
    return ResponseFunctionToolCall(
        type="function_call",
        id=str(raw.get("id") or f"fc_{call_id}"),
        call_id=call_id,
        name=str(raw.get("name")),
        arguments=str(raw.get("arguments") or ""),
        status="completed",
    )


def mcp_call(raw: dict[str, Any], server_label: str) -> McpCall:
    """The opening of a tool call the server runs: arguments known, output to come."""
    call_id = str(raw.get("call_id") or raw.get("id"))
    return McpCall(
        type="mcp_call",
        id=f"mcp_{call_id}",
        server_label=str(raw.get("server_label") or server_label),
        name=str(raw.get("name")),
        arguments=str(raw.get("arguments") or "{}"),
        output=None,
        error=None,
        status="in_progress",
    )


def output_text(output: Any) -> str:
    """A tool's output as text: a string as it is; content parts by their text, joined."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = [str(p["text"]) for p in output if isinstance(p, dict) and isinstance(p.get("text"), str)]
        if len(texts) == len(output):
            return "\n".join(texts)
    return "" if output is None else json.dumps(output, ensure_ascii=False)


def mcp_result(shell: McpCall, raw: dict[str, Any]) -> McpCall:
    return shell.model_copy(update={"output": output_text(raw.get("output")), "status": "completed"})


def approval_request(raw: dict[str, Any]) -> McpApprovalRequest:
    return McpApprovalRequest(
        type="mcp_approval_request",
        id=str(raw.get("id")),
        server_label=str(raw.get("server_label") or DEFAULT_LABEL),
        name=str(raw.get("name")),
        arguments=str(raw.get("arguments") or "{}"),
    )


def hosted_item(raw: dict[str, Any]) -> ResponseOutputItem | None:
    """A hosted tool's call (run by the model's endpoint) as the spec's item; None if the spec
    has no such item (logged, and left out of the response)."""
    values = {**raw, "status": raw.get("status") or "completed"}
    try:
        return known_fields(OUTPUT_ITEM.validate_python(values))
    except pydantic.ValidationError:
        _logger.warning(
            "an output item of type %r does not fit the Responses spec; left out", raw.get("type")
        )
        return None


def usage(raw: dict[str, Any] | None) -> ResponseUsage | None:
    """The agent's usage as the spec's; None stays None (the backend reported none)."""
    if not raw:
        return None
    input_tokens = int(raw.get("input_tokens") or 0)
    output_tokens = int(raw.get("output_tokens") or 0)
    cached = (raw.get("input_tokens_details") or {}).get("cached_tokens")
    written = (raw.get("input_tokens_details") or {}).get("cache_write_tokens")
    reasoning = (raw.get("output_tokens_details") or {}).get("reasoning_tokens")
    return ResponseUsage(
        input_tokens=input_tokens,
        input_tokens_details=InputTokensDetails(
            cached_tokens=int(cached or 0), cache_write_tokens=int(written or 0)
        ),
        output_tokens=output_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=int(reasoning or 0)),
        total_tokens=int(raw.get("total_tokens") or input_tokens + output_tokens),
    )


# -- input items as the agent's items ----------------------------------------------------------------
def _error_text(error: Any) -> str:
    """An ``mcp_call`` error (a string, or one of the spec's error objects) as text."""
    if not isinstance(error, dict):
        return str(error)
    if error.get("message"):
        return str(error["message"])
    content = error.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or error)


def _agent_item(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """One input item as the agent's items (none, one, or the pair an ``mcp_call`` stands for)."""
    kind = item.get("type")
    if kind == "item_reference":
        raise invalid(f"'input[{index}]' is an item_reference that was not resolved", param="input")
    if kind == "mcp_list_tools":
        return []
    if kind == "mcp_call":
        call_id = str(item.get("id") or f"mcp_{index}").removeprefix("mcp_")
        call = {
            "type": "function_call",
            "id": f"fc_{call_id}",
            "call_id": call_id,
            "name": str(item.get("name") or "tool"),
            "arguments": str(item.get("arguments") or "{}"),
        }
        output = item.get("output")
        if output is None and item.get("error") is not None:
            output = f"error: {_error_text(item['error'])}"
        return [call, {"type": "function_call_output", "call_id": call_id, "output": output_text(output)}]
    return [item]


def agent_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items (references resolved) as the agent's input items."""
    return [out for index, item in enumerate(items) for out in _agent_item(index, item)]
