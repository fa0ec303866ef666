"""Stored responses on ``/responses``: what a request continues from, and what it leaves behind.

* :meth:`StoredResponses.prepare` turns a checked body into the agent's whole input: the
  stored context of ``previous_response_id`` (its history and output), then the request's own
  items, ``item_reference`` items replaced by the stored items they name. All of it is scoped to
  the request's user. A ``conversation`` of the Conversations API must be one of the user's
  (the agent's session then holds its history).
* :class:`Recorder` stores the response when it ends, before the client sees the end, so the
  next turn can continue from it on any replica.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from openai.types.responses import Response

from agentship.errors import StateError
from agentship.events import AgentEvent, ItemDone
from agentship.server.core.errors import HttpError
from agentship.server.protocols.conversations import not_found as conversation_not_found
from agentship.server.protocols.responses.events import wire
from agentship.server.protocols.responses.items import agent_items
from agentship.server.protocols.responses.request import (
    Checked,
    ResponsesBody,
    conversation_id,
    input_items,
    references,
    substitute,
)
from agentship.state import StateStore, StoredResponse, trim_history
from agentship.state.openai_conversations import ID_PREFIX
from agentship.state.records import TERMINAL, as_input_item, chained


def not_found(response_id: str) -> HttpError:
    return HttpError(
        404, "invalid_request_error", f"Response with id {response_id!r} not found.", param="response_id"
    )


@dataclass
class Prepared:
    """A request's input, resolved against the store."""

    history: list[dict[str, Any]]
    """What the agent sees: the earlier context, then this request's items (agent format)."""
    input: list[dict[str, Any]]
    """This request's own items as the client sent them (references resolved), with ids."""
    parent_id: str | None = None
    """The stored response whose context ``history`` continues, when the store keeps only
    ``own`` for this one (its history is kept once, in the chain)."""
    own: list[dict[str, Any]] | None = None
    """This request's own items in agent format: what the store keeps with ``parent_id``."""
    inherited: list[dict[str, Any]] | None = None
    """The parent's context, as read for this request."""


def _listed(item: dict[str, Any]) -> dict[str, Any]:
    """An input item as ``GET …/input_items`` lists it: with an id, a message with typed parts."""
    item = item if item.get("id") else {**item, "id": f"msg_{uuid4().hex[:24]}"}
    if item.get("type", "message") != "message":
        return item
    part = "output_text" if item.get("role") == "assistant" else "input_text"
    content = item.get("content")
    if isinstance(content, str):
        content = [{"type": part, "text": content}]
    return {**item, "type": "message", "status": item.get("status") or "completed", "content": content}


def _with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_listed(item) for item in items]


class StoredResponses:
    """``conversations``: whether ``conversation`` ids of the Conversations API's form must name
    one of the user's conversations (they do when the agent's conversations are its sessions)."""

    def __init__(self, store: StateStore, conversations: bool = False) -> None:
        self.store = store
        self.conversations = conversations

    async def _check_conversation(self, parsed: ResponsesBody, user_id: str) -> None:
        """A ``conv_…`` conversation must exist for the user (404); any other id is the client's
        own, its conversation made by its first turn."""
        conversation = conversation_id(parsed)
        if not (self.conversations and conversation and conversation.startswith(ID_PREFIX)):
            return
        if await self.store.openai_conversations.get(user_id, conversation) is None:
            raise conversation_not_found(conversation, param="conversation")

    async def prepare(self, checked: Checked, user_id: str) -> Prepared:
        parsed = checked.body
        await self._check_conversation(parsed, user_id)
        items = input_items(parsed)
        wanted = references(items)
        if wanted:
            items = substitute(items, await self.store.responses.items(user_id, wanted))
        own = agent_items(items)
        if not parsed.previous_response_id:
            return Prepared(trim_history(own, self.store.settings.max_items), _with_ids(items))
        found = await self.store.responses.continued(user_id, parsed.previous_response_id)
        if found is None:
            raise HttpError(
                400,
                "invalid_request_error",
                f"Previous response with id {parsed.previous_response_id!r} not found.",
                param="previous_response_id",
            )
        previous, context = found
        history, kept = chained(context, own, self.store.settings.max_items)
        if kept is None or previous.status not in TERMINAL:  # an unfinished context may yet change
            return Prepared(history, _with_ids(items))
        return Prepared(history, _with_ids(items), previous.id, kept, context)

    def recorder(self, checked: Checked, user_id: str, prepared: Prepared, response_id: str) -> Recorder:
        parsed = checked.body
        record = self.store.responses.new_record(
            id=response_id,
            user_id=user_id,
            status="in_progress",
            request=parsed.model_dump(exclude_none=True),
            input=prepared.input,
            history=prepared.history if prepared.own is None else prepared.own,
            parent_id=prepared.parent_id,
            inherited=prepared.inherited,
            conversation_id=conversation_id(parsed),
            previous_response_id=parsed.previous_response_id,
            background=parsed.background,
        )
        return Recorder(self.store, record)


SAVE_RETRY_PAUSES_S = (0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0)
"""How long a response's save waits for the store between tries: about 10 s in all."""

_logger = logging.getLogger(__name__)


@dataclass
class Recorder:
    """Stores one response when it ends."""

    store: StateStore
    record: StoredResponse
    output: list[dict[str, Any]] = field(default_factory=list)

    def feed(self, event: AgentEvent) -> None:
        if isinstance(event, ItemDone):
            self.output.append(as_input_item(event.item))

    def keep(self, final: Response) -> StoredResponse:
        """The record with the response's end (status, the response object, the agent's output)."""
        self.record.status = final.status or "completed"
        self.record.response = wire(final)
        self.record.output = self.output
        return self.record

    async def save(self, final: Response) -> None:
        """Store the response, through a short outage of the store (a database restart): its
        turn may already be kept in a conversation, and a client told "failed" sends the turn
        again. Saving is an upsert, so a save whose answer was lost is simply made again."""
        record = self.keep(final)
        for attempt, pause in enumerate((*SAVE_RETRY_PAUSES_S, None)):
            try:
                await self.store.responses.save(record, fresh=attempt == 0)
                return
            except StateError:
                if pause is None:
                    raise
                _logger.info("storing response %s: the store is away; again in %.2f s", record.id, pause)
                await asyncio.sleep(pause)
