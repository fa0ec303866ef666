"""The Conversations API's routes: conversations (create, retrieve, update, delete) and their
items (list, add, retrieve one, delete one).

Each sees only the requesting user's conversations, the user decided by the identity rule
(:mod:`agentship.server.http.identity`; the spec's bodies name no user, so the request's own
claim is the ``user`` query parameter, on every route): another user's conversation does not
exist (404). The answers are openai-python's own types (``openai.types.conversations``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from openai.types.conversations import Conversation, ConversationDeletedResource, ConversationItemList
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agentship.server.core.errors import HttpError, classify, invalid
from agentship.server.http.body import ClientGone, parse_json, read_body
from agentship.server.http.identity import identify
from agentship.server.protocols.conversations import bodies, items, not_found
from agentship.server.protocols.responses.events import wire
from agentship.server.protocols.responses.request import references, substitute
from agentship.state import StateStore
from agentship.state.openai_conversations import ConversationRecord, SessionItem

if TYPE_CHECKING:
    from agentship.server.services import Services

CONVERSATION_ID = re.compile(r"conv_[0-9a-f]{48}")
"""The form of the ids this server gives; any other id is not one of its conversations."""

type Action = Callable[[Request], Awaitable[BaseModel]]


def conversation(rec: ConversationRecord) -> Conversation:
    return Conversation(
        id=rec.id, object="conversation", created_at=int(rec.created_at), metadata=dict(rec.metadata)
    )


def added(listed: list[items.Listed], written: list[SessionItem]) -> ConversationItemList:
    """The items a request added, as the conversation lists them."""
    rows = {item.row for item in written}
    data = [item for item in listed if item.row in rows]
    return ConversationItemList(
        object="list",
        data=[item.item for item in data],
        first_id=data[0].id if data else "",
        last_id=data[-1].id if data else "",
        has_more=False,
    )


class ConversationRoutes:
    def __init__(self, services: Services) -> None:
        self.services = services

    # -- the steps every route takes ----------------------------------------------------------------
    def _store(self) -> StateStore:
        if self.services.store is None:
            raise HttpError(
                404, "invalid_request_error", "conversations are switched off on this server (no state store)"
            )
        if not self.services.runner.sessions_in_store:
            raise HttpError(
                404,
                "invalid_request_error",
                "this agent keeps its conversations itself: the Conversations API serves the "
                "conversations of OpenAI Agents SDK agents",
            )
        return self.services.store

    def _user(self, request: Request) -> str:
        return identify(request.scope, request.query_params.get("user")).user

    def _id(self, request: Request) -> str:
        conversation_id = str(request.path_params["conversation_id"])
        if not CONVERSATION_ID.fullmatch(conversation_id):
            raise not_found(conversation_id)
        return conversation_id

    async def _body(self, request: Request, empty_is: dict[str, Any] | None = None) -> dict[str, Any]:
        raw = await read_body(request, self.services.settings.body_limits)
        if not raw.strip() and empty_is is not None:
            return empty_is
        return parse_json(raw, needs="")

    async def _answer(self, request: Request, action: Action, status: int = 200) -> Response:
        try:
            return JSONResponse(wire(await action(request)), status_code=status)
        except ClientGone:
            return Response(status_code=499)  # nobody reads it
        except Exception as exc:  # noqa: BLE001 - every failure is an HTTP answer
            error = classify(exc, self.services.settings.retry_after_s)
            return JSONResponse(error.body(), status_code=error.status, headers=error.headers or None)

    async def _input(self, store: StateStore, user: str, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Checked input items, references resolved, as the session keeps them."""
        checked = items.checked_kinds(raw)
        if wanted := references(checked, "items"):
            checked = substitute(checked, await store.responses.items(user, wanted), "items")
        return items.to_store(checked)

    async def _listed(self, request: Request) -> tuple[str, list[items.Listed]]:
        store, user, conversation_id = self._store(), self._user(request), self._id(request)
        found = await store.openai_conversations.items(user, conversation_id)
        if found is None:
            raise not_found(conversation_id)
        return conversation_id, items.wired(conversation_id, found)

    # -- conversations ------------------------------------------------------------------------------
    async def create(self, request: Request) -> Response:
        return await self._answer(request, self._create)

    async def _create(self, request: Request) -> Conversation:
        store, user = self._store(), self._user(request)
        body = await self._body(request, empty_is={})
        parsed = bodies.parsed(bodies.ConversationCreateBody, body)
        first = await self._input(store, user, body["items"]) if parsed.items else []
        rec, _ = await store.openai_conversations.create(user, dict(parsed.metadata or {}), first)
        return conversation(rec)

    async def retrieve(self, request: Request) -> Response:
        return await self._answer(request, self._retrieve)

    async def _retrieve(self, request: Request) -> Conversation:
        store, user, conversation_id = self._store(), self._user(request), self._id(request)
        rec = await store.openai_conversations.get(user, conversation_id)
        if rec is None:
            raise not_found(conversation_id)
        return conversation(rec)

    async def update(self, request: Request) -> Response:
        return await self._answer(request, self._update)

    async def _update(self, request: Request) -> Conversation:
        store, user, conversation_id = self._store(), self._user(request), self._id(request)
        if "metadata" not in (body := await self._body(request)):
            raise invalid("the request is missing the required field 'metadata'", param="metadata")
        parsed = bodies.parsed(bodies.ConversationUpdateBody, body)
        rec = await store.openai_conversations.update(user, conversation_id, dict(parsed.metadata or {}))
        if rec is None:
            raise not_found(conversation_id)
        return conversation(rec)

    async def delete(self, request: Request) -> Response:
        return await self._answer(request, self._delete)

    async def _delete(self, request: Request) -> ConversationDeletedResource:
        store, user, conversation_id = self._store(), self._user(request), self._id(request)
        if not await store.openai_conversations.delete(user, conversation_id):
            raise not_found(conversation_id)
        return ConversationDeletedResource(id=conversation_id, object="conversation.deleted", deleted=True)

    # -- items --------------------------------------------------------------------------------------
    async def list_items(self, request: Request) -> Response:
        return await self._answer(request, self._list_items)

    async def _list_items(self, request: Request) -> items.ConversationItemPage:
        query = bodies.list_query(request.query_params)
        _, listed = await self._listed(request)
        return items.page(listed, query.order, query.after, query.limit)

    async def create_items(self, request: Request) -> Response:
        return await self._answer(request, self._create_items)

    async def _create_items(self, request: Request) -> ConversationItemList:
        store, user, conversation_id = self._store(), self._user(request), self._id(request)
        bodies.include(request.query_params)
        body = await self._body(request)
        bodies.parsed(bodies.ItemsCreateBody, body)
        stored = await self._input(store, user, body["items"])
        written = await store.openai_conversations.append(user, conversation_id, stored)
        if written is None:
            raise not_found(conversation_id)
        _, listed = await self._listed(request)  # ids are given over the whole conversation
        return added(listed, written)

    async def retrieve_item(self, request: Request) -> Response:
        return await self._answer(request, self._retrieve_item)

    async def _retrieve_item(self, request: Request) -> BaseModel:
        bodies.include(request.query_params)
        return (await self._item(request)).item

    async def delete_item(self, request: Request) -> Response:
        return await self._answer(request, self._delete_item)

    async def _delete_item(self, request: Request) -> Conversation:
        store, user = self._store(), self._user(request)
        target = await self._item(request)
        conversation_id = self._id(request)
        if not await store.openai_conversations.remove(user, conversation_id, target.row):
            raise _item_not_found(target.id)
        rec = await store.openai_conversations.get(user, conversation_id)
        if rec is None:
            raise not_found(conversation_id)
        return conversation(rec)

    async def _item(self, request: Request) -> items.Listed:
        item_id = str(request.path_params["item_id"])
        _, listed = await self._listed(request)
        for item in listed:
            if item.id == item_id:
                return item
        raise _item_not_found(item_id)


def _item_not_found(item_id: str) -> HttpError:
    return HttpError(404, "invalid_request_error", f"Item with id {item_id!r} not found.", param="item_id")
