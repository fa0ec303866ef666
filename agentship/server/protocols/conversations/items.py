"""A conversation's items between the state store and the wire. Pure.

In the store a conversation's items are its SDK session's items: Responses input items, as the
OpenAI Agents SDK wrote them during turns or as a client added them (:func:`to_store`). On the
wire they are openai-python's ``ConversationItem`` models (:func:`to_wire`), validated:

* a message keeps its role and content, its text parts typed (``input_text``, or
  ``output_text`` for the assistant's), ``completed`` unless it says otherwise;
* a tool call, its output and a reasoning item are shown as the items they are;
* a tool the server ran is its ``function_call`` and ``function_call_output`` pair: what the
  agent sees as history (an ``mcp_call`` a client adds is stored as that pair too).

Each item's id (:func:`identified`) is its own when it has one (a Responses-API model's
``msg_…``, an id a client sent), unless an earlier item of the conversation has it already;
else one derived from its place in the store (``msg_…``, ``fc_…``, ``fco_…``, ``rs_…``): stable
for as long as the item exists, and never reused.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, NamedTuple

import pydantic
from openai.types.conversations import ConversationItem, ConversationItemList

from agentship.server.core.errors import invalid
from agentship.server.protocols.responses.items import agent_items
from agentship.state.openai_conversations import SessionItem

_logger = logging.getLogger("agentship.server")

CONVERSATION_ITEM: pydantic.TypeAdapter[ConversationItem] = pydantic.TypeAdapter(ConversationItem)

MAX_ITEMS = 20
"""The most items one request may add (OpenAI's limit)."""
KINDS = frozenset(
    {"message", "function_call", "function_call_output", "reasoning", "mcp_call", "item_reference"}
)
"""The input items a conversation takes (an ``item_reference`` is replaced by the stored item it
names, an ``mcp_call`` by its call and output): those the agent can be given as history."""
SDK_PLACEHOLDER_ID = "__fake_id__"
"""The id the Agents SDK gives items whose model named none (``agents.models.fake_id``)."""
_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}
_WITH_STATUS = frozenset({"function_call", "function_call_output"})
"""Item types whose wire form needs a status the stored item may lack."""


class ConversationItemPage(ConversationItemList):
    """A page of items; an empty page has no first or last id (``null``)."""

    first_id: str | None  # type: ignore[assignment]
    last_id: str | None  # type: ignore[assignment]


def kind_of(item: dict[str, Any]) -> str:
    kind = item.get("type")
    return str(kind) if kind is not None else "message"


# -- to the store -----------------------------------------------------------------------------------
def checked_kinds(items: list[dict[str, Any]], param: str = "items") -> list[dict[str, Any]]:
    """``items`` (already checked as the spec's input items), if each is of a kind a conversation
    takes; else a 400 naming the first that is not."""
    for index, item in enumerate(items):
        if kind_of(item) not in KINDS:
            raise invalid(
                f"'{param}[{index}]' is a {kind_of(item)} item; a conversation here holds only "
                f"{', '.join(sorted(KINDS - {'item_reference'}))} items (and item references)",
                param=param,
            )
    return items


def to_store(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Checked input items (references resolved) as the session keeps them."""
    return agent_items(items)


# -- to the wire ------------------------------------------------------------------------------------
def _derived_id(conversation_id: str, item: SessionItem) -> str:
    digest = hashlib.sha256(f"{conversation_id}\x00{item.row}".encode()).hexdigest()[:48]
    return f"{_PREFIX.get(kind_of(item.item), 'item')}_{digest}"


def identified(conversation_id: str, items: list[SessionItem]) -> list[tuple[str, SessionItem]]:
    """Each item with its id (see the module's docstring), in order."""
    seen: set[str] = set()
    out = []
    for item in items:
        own = item.item.get("id")
        if isinstance(own, str) and 0 < len(own) <= 255 and own != SDK_PLACEHOLDER_ID and own not in seen:
            item_id = own
        else:
            item_id = _derived_id(conversation_id, item)
        seen.add(item_id)
        out.append((item_id, item))
    return out


def _part(part: Any, role: str) -> Any:
    if isinstance(part, str):
        part = {"type": "output_text" if role == "assistant" else "input_text", "text": part}
    if isinstance(part, dict) and part.get("type") == "output_text":
        return {"annotations": [], **part}
    return part


def _message(item: dict[str, Any], item_id: str) -> dict[str, Any]:
    role = str(item.get("role") or "user")
    content = item.get("content")
    parts = [content] if isinstance(content, str) else list(content or [])
    values = {
        "type": "message",
        "id": item_id,
        "role": role,
        "status": item.get("status") or "completed",
        "content": [_part(p, role) for p in parts],
    }
    if item.get("phase") is not None:
        values["phase"] = item["phase"]
    return values


def to_wire(item_id: str, item: dict[str, Any]) -> ConversationItem | None:
    """A stored item as the spec's conversation item; None (logged) for one the spec has no
    item for."""
    kind = kind_of(item)
    if kind == "message":
        values = _message(item, item_id)
    else:
        values = {**item, "id": item_id}
        if kind in _WITH_STATUS and not values.get("status"):
            values["status"] = "completed"
    try:
        wired = CONVERSATION_ITEM.validate_python(values)
    except pydantic.ValidationError:
        _logger.warning("a conversation item of type %r does not fit the spec; left out", kind)
        return None
    if wired.model_extra:  # fields the spec does not define for it
        kept = wired.model_dump(exclude=set(wired.model_extra), exclude_unset=True, by_alias=True)
        wired = CONVERSATION_ITEM.validate_python(kept)
    return wired


class Listed(NamedTuple):
    """An item of the conversation on the wire, with its id and its row in the store."""

    id: str
    row: int
    item: ConversationItem


def wired(conversation_id: str, items: list[SessionItem]) -> list[Listed]:
    """The conversation's items on the wire, in order."""
    out = []
    for item_id, stored in identified(conversation_id, items):
        if (wire_item := to_wire(item_id, stored.item)) is not None:
            out.append(Listed(item_id, stored.row, wire_item))
    return out


def page(items: list[Listed], order: str, after: str | None, limit: int) -> ConversationItemPage:
    """One page of ``items`` (in the conversation's order): ``order``, after the item ``after``."""
    ordered = list(items) if order == "asc" else list(reversed(items))
    if after is not None:
        ids = [item.id for item in ordered]
        if after not in ids:
            raise invalid(f"'after' is not an item of this conversation: {after!r}", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    data = ordered[:limit]
    return ConversationItemPage(
        object="list",
        data=[item.item for item in data],
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=len(ordered) > limit,
    )
