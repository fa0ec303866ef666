"""What the store keeps, as plain dataclasses, and the pure rules about it (no I/O here)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Status = Literal["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled", "incomplete"})


@dataclass
class StoredResponse:
    """One ``/responses`` answer as stored: what was asked, what the agent saw, what it said."""

    id: str
    user_id: str
    status: Status
    request: dict[str, Any]
    """The create body as checked (what a background run is re-run from)."""
    input: list[dict[str, Any]]
    """This request's own input items, with item references resolved."""
    history: list[dict[str, Any]]
    """The items the agent was given as input: all of them (the previous responses' turns, then
    ``input``) when ``parent_id`` is None; else only this request's own, which follow the
    context of the response ``parent_id`` names (the store reads that chain back)."""
    output: list[dict[str, Any]] = field(default_factory=list)
    """The agent's output items, in the agent's own format (``function_call`` and its output)."""
    response: dict[str, Any] | None = None
    """The response object as the client sees it (server-run tools as ``mcp_call``)."""
    conversation_id: str | None = None
    previous_response_id: str | None = None
    background: bool = False
    created_at: float = 0.0
    expires_at: float = 0.0
    attempt: int = 0
    """How many times the run was started (claimed), its first run included."""
    released: int = 0
    """How many of those attempts were given up at a replica's shutdown (not died)."""
    cancel_requested: bool = False
    owner: str | None = None
    lease_until: float | None = None
    parent_id: str | None = None
    """The stored response whose context ``history`` continues: a conversation's history is kept
    once, in the chain of its responses, not copied into each of them."""
    inherited: list[dict[str, Any]] | None = field(default=None, repr=False, compare=False)
    """The parent's context as this response's turn read it, in memory only: what the record's
    first save writes into ``history`` instead (with no parent) if the parent is gone by then."""


@dataclass(frozen=True)
class RunControl:
    """What a background run's owner learns at each heartbeat."""

    still_owner: bool
    cancel_requested: bool


@dataclass
class ReplayState:
    """Where a stream stands after the events so far: for a replica that takes a run over."""

    next_seq: int = 0
    open_items: dict[int, dict[str, Any]] = field(default_factory=dict)  # output_index -> added item
    next_index: int = 0
    terminal: bool = False


def replay_state(events: list[dict[str, Any]]) -> ReplayState:
    state = ReplayState()
    for event in events:
        state.next_seq = max(state.next_seq, int(event.get("sequence_number", -1)) + 1)
        kind = event.get("type")
        index = event.get("output_index")
        if kind == "response.output_item.added" and isinstance(index, int):
            state.open_items[index] = dict(event.get("item") or {})
            state.next_index = max(state.next_index, index + 1)
        elif kind == "response.output_item.done" and isinstance(index, int):
            state.open_items.pop(index, None)
        elif kind in ("response.completed", "response.failed", "response.incomplete"):
            state.terminal = True
    return state


def as_input_item(item: dict[str, Any]) -> dict[str, Any]:
    """An output item as it goes back into a model's input (status and empty fields dropped)."""
    return {k: v for k, v in item.items() if v is not None and k != "status"}


def anchored(rec: StoredResponse, inherited: list[dict[str, Any]], max_items: int) -> StoredResponse:
    """``rec`` standing on its own: its whole history (after ``inherited``, its parent's context)
    in ``history``, and no parent. Pure."""
    history = trim_history([*inherited, *rec.history], max_items)
    return replace(rec, history=history, parent_id=None, inherited=None)


def chained(
    inherited: list[dict[str, Any]], own: list[dict[str, Any]], max_items: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """What a response continuing a stored context keeps: the agent's whole input, and the own
    items to store after the parent's context (None when the trimmed input keeps none of the
    inherited items: the response then stands on its own, its whole input in ``history``)."""
    whole = trim_history([*inherited, *own], max_items)
    return whole, (own if len(whole) > len(own) else None)


def trim_history(items: list[dict[str, Any]], max_items: int) -> list[dict[str, Any]]:
    """The newest ``max_items`` items at most, cut at a turn boundary (a user message first), so
    that no tool output loses the call it answers."""
    if len(items) <= max_items:
        return items
    start = len(items) - max_items
    while start < len(items) and not _starts_turn(items[start]):
        start += 1
    return items[start:] if start < len(items) else items[-1:]


def _starts_turn(item: dict[str, Any]) -> bool:
    return item.get("type", "message") == "message" and item.get("role") in ("user", "system", "developer")


def conversation_key(user_id: str, conversation_id: str) -> str:
    """One string for a (user, conversation) pair that no other pair maps to."""
    return json.dumps([user_id, conversation_id], separators=(",", ":"))
