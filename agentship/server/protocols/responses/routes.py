"""The stored-response routes of the Responses API.

``GET /responses/{id}`` (``?stream=true&starting_after=N`` replays it as a stream, and follows a
background run live), ``DELETE /responses/{id}``, ``POST /responses/{id}/cancel`` and
``GET /responses/{id}/input_items``. Each sees only the requesting user's responses, the user
decided by the identity rule (:mod:`agentship.server.http.identity`; these routes have no body,
so the request's own claim is the ``user`` query parameter).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseItemList
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agentship.server.core.errors import HttpError, classify, invalid
from agentship.server.http.identity import MAX_ID, identify
from agentship.server.protocols.conversations.bodies import INCLUDABLE
from agentship.server.protocols.responses.events import Event, frame, replay
from agentship.state import StateStore, StoredResponse
from agentship.state.records import TERMINAL

if TYPE_CHECKING:
    from agentship.server.services import Services

CANCEL_WAIT_S = 30.0
"""How long ``cancel`` waits for the run's owner to end it before it answers 503."""


class ResponseDeleted(BaseModel):
    """``DELETE /responses/{id}``'s answer."""

    id: str
    object: Literal["response"]
    deleted: bool


class InputItemPage(ResponseItemList):
    """A page of a stored response's input items; an empty page has no first or last id (``null``)."""

    first_id: str | None  # type: ignore[assignment]
    last_id: str | None  # type: ignore[assignment]


def not_found(response_id: str) -> HttpError:
    return HttpError(
        404, "invalid_request_error", f"Response with id {response_id!r} not found.", param="response_id"
    )


def snapshot(rec: StoredResponse) -> dict[str, Any]:
    """The response object as it stands (a background run's status is the row's)."""
    response = dict(rec.response or {"id": rec.id, "object": "response", "output": []})
    response["status"] = rec.status
    return response


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise invalid(f"'{name}' must be an integer", param=name) from exc


type Action = Callable[[Request], Awaitable[Response]]


class StoredRoutes:
    def __init__(self, services: Services) -> None:
        self.services = services

    def _store(self) -> StateStore:
        if self.services.store is None:
            raise HttpError(404, "invalid_request_error", "stored responses are switched off on this server")
        return self.services.store

    def _user(self, request: Request) -> str:
        return identify(request.scope, request.query_params.get("user")).user

    async def _found(self, request: Request) -> StoredResponse:
        response_id = str(request.path_params["response_id"])
        if len(response_id) > MAX_ID or not response_id.isprintable():
            raise not_found(response_id)  # no response has such an id (and no store is asked)
        rec = await self._store().responses.get(self._user(request), response_id)
        if rec is None:
            raise not_found(response_id)
        return rec

    async def _answer(self, request: Request, action: Action) -> Response:
        try:
            return await action(request)
        except Exception as exc:  # noqa: BLE001 - every failure is an HTTP answer
            error = classify(exc, self.services.settings.retry_after_s)
            return JSONResponse(error.body(), status_code=error.status, headers=error.headers or None)

    # -- GET ----------------------------------------------------------------------------------------
    async def get(self, request: Request) -> Response:
        return await self._answer(request, self._get)

    async def _get(self, request: Request) -> Response:
        rec = await self._found(request)
        wanted = set(request.query_params.getlist("include") + request.query_params.getlist("include[]"))
        if unknown := sorted(wanted - INCLUDABLE):
            raise invalid(f"'include' has unknown values: {', '.join(unknown)}", param="include")
        if request.query_params.get("stream", "").lower() != "true":
            return JSONResponse(snapshot(rec))
        after = _int(request.query_params.get("starting_after", "-1"), "starting_after")
        if rec.background:
            followed = self.services.background_runs().follow(rec.id, after)
            return EventSourceResponse(self._framed(followed), sep="\n", ping=15)
        events = [
            e for e in replay(OpenAIResponse.model_validate(snapshot(rec))) if e["sequence_number"] > after
        ]
        return EventSourceResponse(self._framed(_each(events)), sep="\n", ping=15)

    async def _framed(self, events: AsyncIterator[Event]) -> AsyncIterator[dict[str, str]]:
        async for event in events:
            yield frame(event)

    # -- DELETE -------------------------------------------------------------------------------------
    async def delete(self, request: Request) -> Response:
        return await self._answer(request, self._delete)

    async def _delete(self, request: Request) -> Response:
        rec = await self._found(request)
        if rec.background and rec.status not in TERMINAL:
            raise invalid("this background response is still running: cancel it first")
        await self._store().responses.delete(rec.user_id, rec.id)
        return JSONResponse(ResponseDeleted(id=rec.id, object="response", deleted=True).model_dump())

    # -- cancel -------------------------------------------------------------------------------------
    async def cancel(self, request: Request) -> Response:
        return await self._answer(request, self._cancel)

    async def _cancel(self, request: Request) -> Response:
        store, rec = self._store(), await self._found(request)
        if not rec.background:
            raise invalid("only responses created with 'background': true can be cancelled")
        if rec.status in TERMINAL:
            return JSONResponse(snapshot(rec))
        await store.responses.request_cancel(rec.user_id, rec.id)
        self.services.background_runs().cancel_local(rec.id)
        deadline = asyncio.get_running_loop().time() + CANCEL_WAIT_S
        while asyncio.get_running_loop().time() < deadline:  # its owner (here or elsewhere) ends it
            current = await store.responses.get(rec.user_id, rec.id)
            if current is None or current.status in TERMINAL:
                return JSONResponse(snapshot(current or rec))
            await asyncio.sleep(0.25)
        raise HttpError(
            503, "server_error", "the cancel was requested, but the run has not ended yet; poll it"
        )

    # -- input items --------------------------------------------------------------------------------
    async def input_items(self, request: Request) -> Response:
        return await self._answer(request, self._input_items)

    async def _input_items(self, request: Request) -> Response:
        rec = await self._found(request)
        order = request.query_params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise invalid("'order' must be 'asc' or 'desc'", param="order")
        limit = _int(request.query_params.get("limit", "20"), "limit")
        if not 1 <= limit <= 100:
            raise invalid("'limit' must be between 1 and 100", param="limit")
        items = list(rec.input) if order == "asc" else list(reversed(rec.input))
        if after := request.query_params.get("after"):
            ids = [item.get("id") for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return JSONResponse(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > limit,
            }
        )


async def _each(events: list[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event
