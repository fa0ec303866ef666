"""OpenAI's Conversations API, on ``/v1/conversations`` and ``/conversations``.

A conversation is the OpenAI Agents SDK session its turns use (:mod:`agentship.state.openai_conversations`):
``POST /responses`` with ``conversation`` continues it, the agent sees its items as history, and
each turn's input and output become its items. :mod:`.bodies` checks the requests,
:mod:`.items` converts the items between the store and the wire, :mod:`.routes` answers.
"""

from __future__ import annotations

from agentship.server.core.errors import HttpError


def not_found(conversation_id: str, param: str = "conversation_id") -> HttpError:
    """The answer for a conversation that does not exist for the requesting user."""
    return HttpError(
        404, "invalid_request_error", f"Conversation with id {conversation_id!r} not found.", param=param
    )
