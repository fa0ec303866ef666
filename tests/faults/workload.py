"""The campaign's clients: conversations, background runs and approvals, as real clients send them
(retrying what the server said failed, giving up on what they cannot know), each outcome recorded.

An outcome is one of:

* ``acknowledged``: the client got a successful answer;
* ``failed``: the server answered that it failed (a 4xx, or a 5xx on every try);
* ``ambiguous``: the connection broke after the request was sent (a replica killed, the client
  hanging up), so the client cannot know whether it ran, and does not send it again.

A request that could not connect (a replica just killed) was never received: it is sent again,
to another replica.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

Outcome = Literal["acknowledged", "failed", "ambiguous"]
RETRIED = frozenset({500, 502, 503, 504})
TRIES = 4


@dataclass
class Turn:
    cluster: str
    user: str
    conversation: str
    marker: str
    kind: str
    outcome: Outcome = "failed"


@dataclass
class Background:
    cluster: str
    user: str
    response_id: str
    cancelled: bool = False


@dataclass
class Approval:
    cluster: str
    user: str
    visitor: str
    approve: bool
    outcome: Outcome = "failed"
    statuses: list[int | str] = field(default_factory=list)


@dataclass
class Record:
    turns: list[Turn] = field(default_factory=list)
    background: list[Background] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)
    probes: int = 0
    leaks: list[str] = field(default_factory=list)
    """Another user's data that a probe could read (each a violation)."""
    stored: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """Per cluster, (user, response id) of stored responses, for the isolation probes."""


class Clients:
    """The campaign's HTTP clients over one cluster's live servers."""

    def __init__(self, http: httpx.AsyncClient, urls: Callable[[], list[str]], rng: random.Random) -> None:
        self.http = http
        self.urls = urls
        self.rng = rng

    async def url(self) -> str:
        """A live server's URL (while a killed one's replacement starts, there may be none)."""
        while not (live := self.urls()):
            await asyncio.sleep(0.2)
        return self.rng.choice(live)

    async def post(self, path: str, body: dict[str, Any], user: str) -> tuple[Outcome, httpx.Response | None]:
        """POST with the retry policy above; the outcome and the last answer."""
        reply: httpx.Response | None = None
        for attempt in range(TRIES):
            try:
                reply = await self.http.post(
                    f"{await self.url()}{path}", json=body, headers={"x-user-id": user}
                )
            except httpx.ConnectError:
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            except httpx.TransportError:
                return "ambiguous", None
            if reply.status_code == 200:
                return "acknowledged", reply
            if reply.status_code not in RETRIED:
                return "failed", reply
            await asyncio.sleep(0.5 * 2**attempt)
        return "failed", reply

    async def hang_up(self, path: str, body: dict[str, Any], user: str) -> Outcome:
        """Stream a request and hang up after its first event."""
        try:
            async with self.http.stream(
                "POST", f"{await self.url()}{path}", json=body, headers={"x-user-id": user}
            ) as reply:
                async for line in reply.aiter_lines():
                    if line.startswith("data:"):
                        break
        except httpx.TransportError:
            pass
        return "ambiguous"


def turn_body(route: str, text: str, conversation: str, stream: bool) -> dict[str, Any]:
    if route == "/invocations":
        return {
            "input": [{"role": "user", "content": text}],
            "context": {"conversation_id": conversation},
            "stream": stream,
        }
    return {"model": "agent", "input": text, "conversation": conversation, "stream": stream}


KINDS = ("ok", "ok", "ok", "slow", "fail", "hang-up")
DIRECTIVES = {
    "ok": "",
    "slow": " [[latency=2 chunks=4]]",
    "fail": " [[fail=500]]",
    "hang-up": " [[latency=3 chunks=6]]",
}


async def conversation(clients: Clients, record: Record, cluster: str, user: str, turns: int) -> None:
    """One conversation's turns, one after the other, each on a random replica and route."""
    name = f"conv-{uuid.uuid4().hex[:10]}"
    for k in range(turns):
        kind = clients.rng.choice(KINDS)
        marker = f"{name}-t{k}"
        turn = Turn(cluster, user, name, marker, kind)
        record.turns.append(turn)
        path = clients.rng.choice(("/invocations", "/responses"))
        body = turn_body(path, f"turn {marker}{DIRECTIVES[kind]}", name, False)
        if kind == "hang-up":
            turn.outcome = await clients.hang_up(path, {**body, "stream": True}, user)
        else:
            turn.outcome, _ = await clients.post(path, body, user)


async def background_run(clients: Clients, record: Record, cluster: str, user: str) -> None:
    body = {"model": "agent", "input": "a long job [[latency=3 chunks=6]]", "background": True}
    outcome, reply = await clients.post("/responses", body, user)
    if outcome != "acknowledged" or reply is None:
        return
    run = Background(cluster, user, reply.json()["id"])
    record.background.append(run)
    record.stored.setdefault(cluster, []).append((user, run.response_id))
    if clients.rng.random() < 0.3:
        await asyncio.sleep(clients.rng.uniform(0.5, 2))
        run.cancelled = True
        await clients.post(f"/responses/{run.response_id}/cancel", {}, user)
    elif clients.rng.random() < 0.5:  # a follower that leaves early
        try:
            async with clients.http.stream(
                "GET",
                f"{await clients.url()}/responses/{run.response_id}?stream=true",
                headers={"x-user-id": user},
            ) as reply_stream:
                async for line in reply_stream.aiter_lines():
                    if line.startswith("data:") and clients.rng.random() < 0.3:
                        break
        except httpx.TransportError:
            pass


async def approval(clients: Clients, record: Record, cluster: str, user: str) -> None:
    """A tool call that waits for approval, answered twice at once (a client's double send)."""
    visitor = f"v{uuid.uuid4().hex[:12]}"
    ask = {"model": "agent", "input": f"Please record visit {json.dumps({'visitor': visitor})}"}
    outcome, reply = await clients.post("/responses", ask, user)
    if outcome != "acknowledged" or reply is None:
        return
    paused = reply.json()
    record.stored.setdefault(cluster, []).append((user, paused["id"]))
    (request,) = [item for item in paused["output"] if item["type"] == "mcp_approval_request"]
    item = Approval(cluster, user, visitor, approve=clients.rng.random() < 0.8)
    record.approvals.append(item)
    answer = {
        "model": "agent",
        "previous_response_id": paused["id"],
        "input": [
            {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": item.approve}
        ],
    }
    answers = await asyncio.gather(*(clients.post("/responses", answer, user) for _ in range(2)))
    item.statuses = [r.status_code if r is not None else outcome for outcome, r in answers]
    outcomes = {outcome for outcome, _ in answers}
    item.outcome = (
        "acknowledged" if "acknowledged" in outcomes else "ambiguous" if "ambiguous" in outcomes else "failed"
    )


async def probe(clients: Clients, record: Record, cluster: str, user: str) -> None:
    """Try to read, and continue, another user's stored responses."""
    theirs = [rid for owner, rid in record.stored.get(cluster, []) if owner != user]
    for response_id in clients.rng.sample(theirs, min(3, len(theirs))):
        record.probes += 2
        try:
            got = await clients.http.get(
                f"{await clients.url()}/responses/{response_id}", headers={"x-user-id": user}
            )
            body = {"model": "agent", "input": "go on", "previous_response_id": response_id}
            cont = await clients.http.post(
                f"{await clients.url()}/responses", json=body, headers={"x-user-id": user}
            )
        except httpx.TransportError:
            continue
        if got.status_code not in (404, 503):
            record.leaks.append(f"{user} read {response_id}: {got.status_code}")
        if cont.status_code not in (400, 503):
            record.leaks.append(f"{user} continued {response_id}: {cont.status_code}")
