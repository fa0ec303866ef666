"""The stored-response routes of the Responses API.

``GET /responses/{id}`` (``?stream=true&starting_after=N`` replays it as a stream, then follows
a background run live), ``DELETE /responses/{id}``, ``POST /responses/{id}/cancel`` and
``GET /responses/{id}/input_items``. Each sees only the requesting user's responses (the
``x-user-id`` header; anonymous without it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agentship.events import ItemDone, ReasoningDelta, TextDelta
from agentship.state import StateStore, StoredResponse
from agentship.state.records import TERMINAL
from serving._background import BackgroundRuns
from serving._errors import HttpError, classify, invalid
from serving._openai_stream import ResponseEncoder, text_of
from serving._stored import USER_HEADER, not_found

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
"""What ``include`` may ask for (output items are stored whole, so it changes nothing here)."""


def replay_stored(response: dict[str, Any]) -> list[dict[str, Any]]:
    """A finished response as the stream that would have carried it. Pure."""
    encoder = ResponseEncoder(str(response.get("model")), response_id=str(response["id"]))
    encoder.created_at = int(response.get("created_at") or encoder.created_at)
    encoder.echo = {
        k: v for k, v in response.items() if k not in ("output", "usage", "status", "error", "id", "object")
    }
    events = encoder.start()
    for item in response.get("output") or []:
        if item.get("type") == "message":
            events += encoder.feed(TextDelta(str(item["id"]), text_of(item)))
        elif item.get("type") == "reasoning" and text_of(item):
            events += encoder.feed(ReasoningDelta(str(item["id"]), text_of(item)))
        events += encoder.feed(ItemDone(item))
    encoder.usage = response.get("usage")
    if response.get("status") == "completed":
        return events + encoder.completed()
    error = response.get("error") or {}
    return events + encoder.failed(
        error.get("code"), str(error.get("message") or "failed"), response.get("status") or "failed"
    )


class StoredRoutes:
    def __init__(self, store: StateStore | None, background: BackgroundRuns | None, frame: Any) -> None:
        self.store = store
        self.background = background
        self.frame = frame

    async def _found(self, request: Request) -> tuple[StateStore, StoredResponse]:
        response_id = request.path_params["response_id"]
        if self.store is None:
            raise HttpError(404, "invalid_request_error", "stored responses are switched off on this server")
        rec = await self.store.responses.get(request.headers.get(USER_HEADER) or "", response_id)
        if rec is None:
            raise not_found(response_id)
        return self.store, rec

    async def _answer(self, request: Request, action: Any) -> Response:
        try:
            return await action(request)  # type: ignore[no-any-return]
        except Exception as exc:  # noqa: BLE001 - every failure is an HTTP answer
            error = classify(exc)
            return JSONResponse(error.body(), status_code=error.status, headers=error.headers or None)

    async def get(self, request: Request) -> Response:
        return await self._answer(request, self._get)

    async def _get(self, request: Request) -> Response:
        _store, rec = await self._found(request)
        wanted = set(request.query_params.getlist("include") + request.query_params.getlist("include[]"))
        if unknown := sorted(wanted - INCLUDABLE):
            raise invalid(f"'include' has unknown values: {', '.join(unknown)}", param="include")
        if request.query_params.get("stream", "").lower() != "true":
            return JSONResponse(snapshot(rec))
        after = _int(request.query_params.get("starting_after", "-1"), "starting_after")
        if rec.background and self.background is not None:
            return EventSourceResponse(self._followed(rec.id, after), sep="\n", ping=15)
        events = [e for e in replay_stored(snapshot(rec)) if e["sequence_number"] > after]
        return EventSourceResponse(self._framed(events), sep="\n", ping=15)

    async def _followed(self, response_id: str, after: int) -> AsyncIterator[dict[str, str]]:
        assert self.background is not None
        async for event in self.background.follow(response_id, after):
            yield self.frame(event)

    async def _framed(self, events: list[dict[str, Any]]) -> AsyncIterator[dict[str, str]]:
        for event in events:
            yield self.frame(event)

    async def delete(self, request: Request) -> Response:
        return await self._answer(request, self._delete)

    async def _delete(self, request: Request) -> Response:
        store, rec = await self._found(request)
        if rec.background and rec.status not in TERMINAL:
            raise invalid("this background response is still running: cancel it first")
        await store.responses.delete(rec.user_id, rec.id)
        return JSONResponse({"id": rec.id, "object": "response", "deleted": True})

    async def cancel(self, request: Request) -> Response:
        return await self._answer(request, self._cancel)

    async def _cancel(self, request: Request) -> Response:
        store, rec = await self._found(request)
        if not rec.background:
            raise invalid("only responses created with 'background': true can be cancelled")
        if rec.status in TERMINAL:
            return JSONResponse(snapshot(rec))
        await store.responses.request_cancel(rec.user_id, rec.id)
        if self.background is not None:
            self.background.cancel_local(rec.id)
        for _ in range(120):  # the run's owner (this replica or another) ends it at its heartbeat
            current = await store.responses.get(rec.user_id, rec.id)
            if current is None or current.status in TERMINAL:
                return JSONResponse(snapshot(current or rec))
            await asyncio.sleep(0.25)
        raise HttpError(
            503, "server_error", "the cancel was requested, but the run has not ended yet; poll it"
        )

    async def input_items(self, request: Request) -> Response:
        return await self._answer(request, self._input_items)

    async def _input_items(self, request: Request) -> Response:
        _store, rec = await self._found(request)
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
