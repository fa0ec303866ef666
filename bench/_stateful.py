"""The headline workload: conversations of the tool request (2 model calls, the get_weather tool,
a 200-word answer), each turn sent to the other replica of two than the last.

agentship keeps the conversation: continued with ``previous_response_id``, or in a
Conversations API conversation (``conversation``), on two replicas sharing one PostgreSQL state
store. Stock ``mlflow models serve`` and MLflow's AgentServer keep nothing: their client resends
the whole history every turn (``resend``), as agentship's does with ``store: false``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from bench._load import pct
from bench._procs import cpu_s
from bench._servers import Contender
from bench._workloads import TOOL_REQUEST

MODES = ("previous_response_id", "conversation", "resend")


def postgres_pid(data_dir: Path) -> int:
    """The PostgreSQL server's postmaster (its backends are its children)."""
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def _path(contender: Contender) -> str:
    return "/v1/responses" if contender.name == "agentship" else "/invocations"


def _resendable(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "status"}


class _Conversation:
    def __init__(self, replicas: list[Contender], index: int, mode: str) -> None:
        self.urls = [r.server.url + _path(r) for r in replicas]
        self.index, self.mode = index, mode
        self.previous: str | None = None
        self.conversation: str | None = None
        self.history: list[dict[str, Any]] = []
        self.agentship = replicas[0].name == "agentship"

    async def open(self, client: httpx.AsyncClient, base: str) -> None:
        if self.mode == "conversation":
            reply = await client.post(f"{base}/v1/conversations", json={})
            self.conversation = reply.raise_for_status().json()["id"]

    def body(self, turn: int) -> dict[str, Any]:
        message = {"role": "user", "content": f"{TOOL_REQUEST} (conversation {self.index}, turn {turn})"}
        if self.mode == "resend":
            self.history.append(message)
            body: dict[str, Any] = {"input": list(self.history)}
            return {**body, "model": "agent", "store": False} if self.agentship else body
        body = {"model": "agent", "input": [message]}
        if self.mode == "conversation":
            body["conversation"] = self.conversation
        elif self.previous:
            body["previous_response_id"] = self.previous
        return body

    async def run(self, client: httpx.AsyncClient, turns: int, latencies: list[float]) -> int:
        errors = 0
        for turn in range(turns):
            url = self.urls[(self.index + turn) % len(self.urls)]
            started = time.perf_counter()
            try:
                reply: httpx.Response | None = await client.post(url, json=self.body(turn))
            except httpx.TransportError:  # a contender that drops the connection: an error, counted
                reply = None
            latencies.append((time.perf_counter() - started) * 1000)
            if reply is None or reply.status_code != 200:
                errors += 1
                if self.mode == "resend":
                    self.history.pop()
                continue
            answer = reply.json()
            self.previous = answer.get("id")
            if self.mode == "resend":
                self.history += [_resendable(item) for item in answer["output"]]
        return errors


async def conversations(
    replicas: list[Contender],
    mode: str,
    count: int,
    turns: int,
    parallel: int | None = None,
    also: list[int] | None = None,
) -> dict[str, Any]:
    """``count`` conversations of ``turns`` turns, ``parallel`` at a time (all at once unless
    given): latency, throughput, errors, and CPU per turn of the replicas' process trees (and of
    ``also``'s, the PostgreSQL server's)."""
    limits = httpx.Limits(max_connections=count + 8, max_keepalive_connections=count + 8)
    gate = asyncio.Semaphore(parallel or count)
    latencies: list[float] = []
    pids = [pid for r in replicas for pid in r.pids]
    async with httpx.AsyncClient(timeout=180, limits=limits) as client:
        chats = [_Conversation(replicas, i, mode) for i in range(count)]
        await asyncio.gather(*(chat.open(client, replicas[0].server.url) for chat in chats))

        async def one(chat: _Conversation) -> int:
            async with gate:
                return await chat.run(client, turns, latencies)

        servers_before, also_before = cpu_s(pids), cpu_s(also or [])
        started = time.perf_counter()
        errors = await asyncio.gather(*(one(chat) for chat in chats))
        elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)  # the last traces' export, and the database's writes of them
    requests = count * turns
    servers, database = cpu_s(pids) - servers_before, cpu_s(also or []) - also_before
    return {
        "mode": mode,
        "requests": requests,
        "errors": sum(errors),
        "throughput_rps": requests / elapsed,
        "p50_ms": pct(latencies, 0.5),
        "p95_ms": pct(latencies, 0.95),
        "cpu_ms": (servers + database) / requests * 1000,
        "server_cpu_ms": servers / requests * 1000,
        "database_cpu_ms": database / requests * 1000,
    }
