"""The Conversations API's request bodies and query parameters, checked. Pure.

Each body is a pydantic model (also what ``/openapi.json`` shows of it): a wrong field is a 400
that names it, and unknown top-level fields are ignored, as on ``/responses``. Items are checked
as the spec's input items (``openai.types.responses.ResponseInputItemParam``), then by kind
(:func:`~.items.checked_kinds`); they are stored as the client sent them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

import pydantic
from openai.types.responses import ResponseInputItemParam
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.datastructures import QueryParams

from agentship.server.core.errors import invalid
from agentship.server.protocols.conversations.items import MAX_ITEMS
from agentship.server.protocols.responses.request import field_error

INCLUDABLE = frozenset(
    {
        "code_interpreter_call.outputs",
        "computer_call_output.output.image_url",
        "file_search_call.results",
        "message.input_image.image_url",
        "message.output_text.logprobs",
        "reasoning.encrypted_content",
        "web_search_call.action.sources",
    }
)
"""What ``include`` may ask for (items are stored whole, so it changes nothing here)."""

MAX_PAIRS, MAX_KEY, MAX_VALUE = 16, 64, 512
Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(max_length=MAX_KEY)],
        Annotated[str, StringConstraints(max_length=MAX_VALUE)],
    ],
    Field(max_length=MAX_PAIRS),
]
"""At most 16 pairs; keys of at most 64 characters, values of at most 512 (OpenAI's limits)."""
Items = Annotated[list[ResponseInputItemParam], Field(min_length=1, max_length=MAX_ITEMS)]


class ConversationCreateBody(BaseModel):
    """``POST /conversations``."""

    model_config = ConfigDict(extra="allow")

    items: Annotated[list[ResponseInputItemParam], Field(max_length=MAX_ITEMS)] | None = None
    """The conversation's first items (at most 20)."""
    metadata: Metadata | None = None


class ConversationUpdateBody(BaseModel):
    """``POST /conversations/{conversation_id}``: the new metadata (null clears it)."""

    model_config = ConfigDict(extra="allow")

    metadata: Metadata | None


class ItemsCreateBody(BaseModel):
    """``POST /conversations/{conversation_id}/items``."""

    model_config = ConfigDict(extra="allow")

    items: Items
    """The items to add at the conversation's end (1 to 20)."""


def _check_metadata(metadata: Any) -> None:
    """OpenAI's limits on metadata, each named (a wrong type is left to the model)."""
    if not isinstance(metadata, dict):
        return
    if len(metadata) > MAX_PAIRS:
        raise invalid(f"'metadata' may have at most {MAX_PAIRS} pairs, not {len(metadata)}", param="metadata")
    for key, value in metadata.items():
        if len(key) > MAX_KEY:
            raise invalid(
                f"'metadata' keys may be at most {MAX_KEY} characters long, not {len(key)}", param="metadata"
            )
        if isinstance(value, str) and len(value) > MAX_VALUE:
            raise invalid(
                f"'metadata.{key}' may be at most {MAX_VALUE} characters long, not {len(value)}",
                param="metadata",
            )


def parsed[M: BaseModel](model: type[M], body: dict[str, Any]) -> M:
    """``body`` as ``model``; a 400 naming its first bad field."""
    if "metadata" in model.model_fields:
        _check_metadata(body.get("metadata"))
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]["loc"]
        raise invalid(field_error(exc), param=str(first[0]) if first else None) from exc


class ListQuery(NamedTuple):
    order: Literal["asc", "desc"]
    after: str | None
    limit: int


def include(query: QueryParams) -> list[str]:
    """The ``include`` values (``include`` or ``include[]``); a 400 for one that is unknown."""
    wanted = query.getlist("include") + query.getlist("include[]")
    if unknown := sorted(set(wanted) - INCLUDABLE):
        raise invalid(f"'include' has unknown values: {', '.join(unknown)}", param="include")
    return wanted


def list_query(query: QueryParams) -> ListQuery:
    """``order`` (default ``desc``), ``after`` and ``limit`` (1 to 100, default 20)."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("'order' must be 'asc' or 'desc'", param="order")
    raw = query.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError as exc:
        raise invalid("'limit' must be an integer", param="limit") from exc
    if not 1 <= limit <= 100:
        raise invalid("'limit' must be between 1 and 100", param="limit")
    include(query)
    return ListQuery("asc" if order == "asc" else "desc", query.get("after") or None, limit)
