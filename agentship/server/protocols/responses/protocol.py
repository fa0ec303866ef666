"""OpenAI's Responses API, ``POST /responses``: a body in, a :class:`~.turn.ResponsesTurn` out.

The steps, in order: check the body (:mod:`.request`), decide the user (the identity rule,
:mod:`agentship.server.http.identity`), resolve the input against the store
(:mod:`.stored`: ``previous_response_id``, ``item_reference``), then build the agent request and
the response the run will fill.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agentship.server.core.errors import invalid
from agentship.server.http.identity import identify
from agentship.server.protocols.invocations import returns_trace
from agentship.server.protocols.responses.background.runs import BackgroundRuns
from agentship.server.protocols.responses.events import ResponseStream
from agentship.server.protocols.responses.items import agent_items
from agentship.server.protocols.responses.live import LiveResponse
from agentship.server.protocols.responses.request import Checked, input_items, parse_body, references
from agentship.server.protocols.responses.stored import Prepared, StoredResponses
from agentship.server.protocols.responses.turn import ResponsesTurn, agent_input, client_tools, new_response


class ResponsesProtocol:
    """``model_name`` is the model a response reports unless the request names one; without
    ``stored`` (the state store is off), nothing is kept and nothing can be continued."""

    def __init__(
        self,
        model_name: str,
        stored: StoredResponses | None,
        background: BackgroundRuns | None = None,
        server_label: str = "agent",
    ) -> None:
        self.model_name = model_name
        self.stored = stored
        self.background = background
        self.server_label = server_label

    def claimed_user(self, body: dict[str, Any]) -> str | None:
        user = body.get("user")
        return user if isinstance(user, str) else None

    async def _prepare(self, checked: Checked, user: str) -> Prepared:
        if self.stored is not None:
            return await self.stored.prepare(checked, user)
        parsed = checked.body
        items = input_items(parsed)
        if parsed.previous_response_id or parsed.background or references(items):
            raise invalid(
                "stored responses are switched off on this server (AGENTSHIP_STATE_URL=none): send the "
                "whole conversation in 'input', without previous_response_id, item references or background"
            )
        return Prepared(agent_items(items), items)

    async def open(self, body: dict[str, Any], request: Request) -> ResponsesTurn | Response:
        """The turn; for a background response, the answer of its submission."""
        checked = parse_body(body)
        user = identify(request.scope, checked.body.user).user
        prepared = await self._prepare(checked, user)
        stream = ResponseStream(new_response(checked, self.model_name))
        recorder = None
        if self.stored is not None and checked.body.store:
            recorder = self.stored.recorder(checked, user, prepared, stream.response.id)
        turn = ResponsesTurn(
            agent_input(checked, prepared.history, user),
            LiveResponse(stream, client_tools(checked), self.server_label),
            stream=checked.body.stream,
            background=checked.body.background,
            recorder=recorder,
            return_trace=returns_trace(request),
        )
        if turn.background and self.background is not None:
            return await self.background.submit(turn)
        return turn
