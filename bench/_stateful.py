"""The stateful workload: conversations continued with ``previous_response_id`` on two replicas
that share a PostgreSQL state store, each turn on the other replica than the last; beside it the
same conversations with ``store: false``, the client resending the history (no store)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench._load import pct
from bench._procs import cpu_s
from bench._servers import Contender


async def _conversation(
    client: httpx.AsyncClient,
    replicas: list[str],
    index: int,
    turns: int,
    stored: bool,
    latencies: list[float],
) -> int:
    previous: str | None = None
    history: list[dict[str, Any]] = []
    errors = 0
    for turn in range(turns):
        message = {"role": "user", "content": f"conversation {index}, turn {turn}: hello there"}
        body: dict[str, Any] = {"model": "agent", "store": stored}
        if stored:
            body["input"] = [message]
            if previous:
                body["previous_response_id"] = previous
        else:
            history.append(message)
            body["input"] = list(history)
        url = f"{replicas[(index + turn) % len(replicas)]}/v1/responses"
        started = time.perf_counter()
        reply = await client.post(url, json=body)
        latencies.append((time.perf_counter() - started) * 1000)
        if reply.status_code != 200:
            errors += 1
            continue
        answer = reply.json()
        previous = answer["id"]
        if not stored:
            history += [{k: v for k, v in item.items() if k != "status"} for item in answer["output"]]
    return errors


async def conversations(
    replicas: list[Contender], count: int, turns: int, stored: bool, parallel: int | None = None
) -> dict[str, Any]:
    """``count`` conversations of ``turns`` turns, ``parallel`` at a time (all at once unless
    given); latency, throughput, CPU per request."""
    urls = [r.server.url for r in replicas]
    pids = [pid for r in replicas for pid in r.pids]
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=count + 8, max_keepalive_connections=count + 8)
    gate = asyncio.Semaphore(parallel or count)

    async def one(client: httpx.AsyncClient, index: int) -> int:
        async with gate:
            return await _conversation(client, urls, index, turns, stored, latencies)

    cpu_before = cpu_s(pids)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        errors = await asyncio.gather(*(one(client, i) for i in range(count)))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)  # trace export
    requests = count * turns
    return {
        "requests": requests,
        "errors": sum(errors),
        "throughput_rps": requests / elapsed,
        "p50_ms": pct(latencies, 0.5),
        "p95_ms": pct(latencies, 0.95),
        "cpu_ms": (cpu_s(pids) - cpu_before) / requests * 1000,
    }
