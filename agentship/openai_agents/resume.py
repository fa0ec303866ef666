"""Resuming a paused run: the request that answers it takes it from the store (exactly one request
does, however many send the same answer at once) and applies its answers; if the turn then
fails, :func:`undo_pauses` puts it back, so that the client can answer again."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from agents.run_state import RunState

from agents import Agent, RunContextWrapper
from agentship.errors import InvalidRequestError, StateError
from agentship.openai_agents.approvals import call_id_of, server_of
from agentship.openai_agents.plan import RequestPlan
from agentship.openai_agents.tools import AgentRunContext
from agentship.state import StateStore
from agentship.state.engine import settled
from agentship.state.runstates import TakenRun

_logger = logging.getLogger(__name__)

ANSWERED = (
    "the approval answers no paused run of this user: it was answered already (or is being "
    "answered by another request right now), or it expired"
)


@dataclass
class Resumption:
    """A taken paused run with the request's answers applied."""

    state: RunState[Any, Any]
    taken: TakenRun
    resumed: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The approved or rejected calls, by call id, as the model made them (with their server)."""


async def take_paused(
    store: StateStore | None, agent: Agent[AgentRunContext], plan: RequestPlan, context: AgentRunContext
) -> Resumption | None:
    """The paused run this request answers, taken and with its answers applied; None if it answers
    none (a client that sends its tools' outputs with the history: a plain run continues)."""
    if not plan.answered or store is None:
        if plan.approvals and store is None:
            raise InvalidRequestError("tool approvals need the state store (AGENTSHIP_STATE_URL is none)")
        return None
    user = context.user_id or ""
    taken = None
    for call_id in plan.answered:
        if (taken := await store.paused.take(user, call_id)) is not None:
            break
    if taken is None:
        if plan.approvals:
            raise InvalidRequestError(ANSWERED)
        return None
    try:
        state: RunState[Any, Any] = await RunState.from_json(
            agent, plain_assistant_messages(taken.state), context_override=RunContextWrapper(context)
        )
    except BaseException:
        await _best_effort(store.paused.restore(taken), "put back a paused run that cannot be resumed")
        raise
    return Resumption(state, taken, _apply(state, plan))


def plain_assistant_messages(state_json: dict[str, Any]) -> dict[str, Any]:
    """``state_json`` with its input's assistant messages as the run was given them. Pure.

    The SDK (0.24) saves ``{"role": "assistant", "content": TEXT}`` as
    ``{"role": "assistant", "content": [output_text parts], "status": "completed"}``: no ``type``,
    and a ``status`` that its own Chat Completions converter refuses ("Unhandled item type or
    structure") when the run resumes, so an approval failed in any conversation with an earlier
    answer. The text goes back to the form :func:`~agentship.openai_agents.convert.to_run_input`
    gives."""
    original = state_json.get("original_input")
    if not isinstance(original, list):
        return state_json
    return {**state_json, "original_input": [_plain(item) for item in original]}


def _plain(item: Any) -> Any:
    if not isinstance(item, dict) or item.get("role") != "assistant" or "type" in item:
        return item
    content = item.get("content")
    if not isinstance(content, list) or not all(isinstance(p, dict) and "text" in p for p in content):
        return item
    return {"role": "assistant", "content": "".join(str(p["text"]) for p in content)}


def _apply(state: RunState[Any, Any], plan: RequestPlan) -> dict[str, dict[str, Any]]:
    resumed = {}
    for item in state.get_interruptions():
        call_id = call_id_of(item)
        if (decision := plan.approvals.get(call_id)) is not None:
            if decision.approve:
                state.approve(item)
            else:
                state.reject(item, rejection_message=decision.reason or "The user rejected this tool call.")
            raw = item.raw_item
            call = raw if isinstance(raw, dict) else raw.model_dump(exclude_none=True)
            resumed[call_id] = {**call, "server_label": server_of(item)}
        elif call_id in plan.client_outputs:
            state.approve(item)  # the client's tool "runs": it returns the output the client sent
    return resumed


async def undo_pauses(store: StateStore, taken: Resumption | None, paused_run: str | None) -> None:
    """A turn failed (or was cancelled): the run it resumed is put back, so that the client can
    answer again, and the run it paused is forgotten (nobody will be told what it waits on).
    Best effort: the failure is what the client hears about; what cannot be undone is logged."""
    if paused_run is not None:
        await _best_effort(store.paused.discard(paused_run), "forget the run a failed turn paused")
    if taken is not None:
        await _best_effort(store.paused.restore(taken.taken), "put back the run a failed turn resumed")


async def _best_effort(operation: Awaitable[None], what: str) -> None:
    try:
        await settled(operation)
    except StateError:
        _logger.warning("could not %s; its approval must be asked again", what)
