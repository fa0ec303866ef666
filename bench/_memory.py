"""Memory under a long run and under slow clients, on one agentship replica with its state on
PostgreSQL and its traces going to the remote tracking server.

* RSS after 100 requests, then after 10,000 (1,000 conversations of 10 turns, continued with
  ``previous_response_id``, 64 at a time): what a leak per request or per conversation would grow.
* 64 clients that stream the tool request's 200-word answer and read it one byte a second,
  their receive buffers small: RSS while they read, and a normal request's latency meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx

from agentship.testing.processes import ServerProcess
from bench._load import median
from bench._procs import tree_rss_mib
from bench._servers import Stores, configure_backend, start
from bench._workloads import ONE_CALL, TOOL_REQUEST


async def _chat(client: httpx.AsyncClient, url: str, index: int, turns: int) -> int:
    previous, errors = None, 0
    for turn in range(turns):
        body: dict[str, Any] = {"model": "agent", "input": f"{ONE_CALL} ({index}, {turn})"}
        if previous:
            body["previous_response_id"] = previous
        reply = await client.post(url, json=body)
        if reply.status_code != 200:
            errors += 1
            continue
        previous = reply.json()["id"]
    return errors


async def _chats(url: str, first: int, count: int, turns: int, parallel: int) -> int:
    gate = asyncio.Semaphore(parallel)
    limits = httpx.Limits(max_connections=parallel + 4, max_keepalive_connections=parallel + 4)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one(index: int) -> int:
            async with gate:
                return await _chat(client, url, index, turns)

        return sum(await asyncio.gather(*(one(first + i) for i in range(count))))


async def _slow_reader(host: str, port: int, seconds: float, read: list[int]) -> None:
    """Stream the tool request and read its answer one byte a second, through a small buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1)
    body = json.dumps({"model": "agent", "input": TOOL_REQUEST, "stream": True}).encode()
    writer.write(
        f"POST /v1/responses HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if await reader.read(1):
                read[0] += 1
            await asyncio.sleep(1.0)
    finally:
        writer.close()


async def _slow_clients(server: ServerProcess, clients: int, seconds: float) -> dict[str, Any]:
    host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
    read = [0]
    readers = [asyncio.create_task(_slow_reader(host, port, seconds, read)) for _ in range(clients)]
    await asyncio.sleep(seconds / 2)
    latencies = []
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(5):  # the server keeps serving others meanwhile
            started = time.perf_counter()
            reply = await client.post(
                f"{server.url}/v1/responses", json={"model": "agent", "input": ONE_CALL}
            )
            reply.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
    rss = tree_rss_mib(server.process.pid)
    await asyncio.gather(*readers)
    return {"clients": clients, "seconds": seconds, "rss_mib": rss, "bytes_read": read[0],
            "other_request_p50_ms": median(latencies)}  # fmt: skip


async def memory(
    model: str, env: dict[str, str], stores: Stores, backend: ServerProcess, logs: Path, remote: Any
) -> dict[str, Any]:
    replica = start(
        "agentship", "remote", model, env, stores, logs, extra={"AGENTSHIP_STATE_URL": remote.state_url}
    )
    url = f"{replica.server.url}/v1/responses"
    pid = replica.server.process.pid
    try:
        configure_backend(backend)
        errors = await _chats(url, 0, 10, 10, 10)  # 100 requests
        after_100 = tree_rss_mib(pid)
        started = time.perf_counter()
        errors += await _chats(url, 10, 990, 10, 64)  # 9,900 more: 1,000 conversations in all
        took = time.perf_counter() - started
        after_10000 = tree_rss_mib(pid)
        slow = await _slow_clients(replica.server, 64, 20.0)
        after_slow = tree_rss_mib(pid)
        return {
            "rss_after_100_mib": after_100,
            "rss_after_10000_mib": after_10000,
            "growth": after_10000 / after_100 - 1,
            "errors": errors,
            "seconds_for_9900": took,
            "slow_clients": slow,
            "rss_after_slow_mib": after_slow,
        }
    finally:
        replica.server.stop()
