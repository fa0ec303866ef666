"""A bounded load generator for loopback servers: every loop has a request and a time limit."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class LoadResult:
    concurrency: int
    completed: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    p50_override: float | None = None
    p95_override: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "completed": self.completed,
            "errors": self.errors,
            "throughput_rps": self.completed / self.elapsed_s if self.elapsed_s else 0.0,
            "p50_ms": self.p50_override if self.p50_override is not None else pct(self.latencies_ms, 0.50),
            "p95_ms": self.p95_override if self.p95_override is not None else pct(self.latencies_ms, 0.95),
        }


async def sequential(url: str, body: dict[str, Any], n: int) -> list[float]:
    """Latency (ms) of ``n`` requests, one after another."""
    out = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(n):
            started = time.perf_counter()
            reply = await client.post(url, json=body)
            reply.raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
    return out


async def closed_loop(
    url: str, body: dict[str, Any], concurrency: int, duration_s: float, max_requests: int
) -> LoadResult:
    """``concurrency`` clients send back-to-back requests for ``duration_s`` (at most
    ``max_requests`` started); only requests completed inside the window count."""
    result = LoadResult(concurrency)
    started = time.perf_counter()
    deadline = started + duration_s
    budget = [max_requests]

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            t0 = time.perf_counter()
            try:
                reply = await client.post(url, json=body)
                ok = reply.status_code == 200
            except httpx.HTTPError:
                ok = False
            t1 = time.perf_counter()
            if t1 > deadline:
                return
            if ok:
                result.completed += 1
                result.latencies_ms.append((t1 - t0) * 1000)
            else:
                result.errors += 1

    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    async with httpx.AsyncClient(timeout=duration_s + 90, limits=limits) as client:
        tasks = [asyncio.create_task(client_loop(client)) for _ in range(concurrency)]
        await asyncio.wait(tasks, timeout=duration_s + 90)
        for task in tasks:
            task.cancel()
    result.elapsed_s = duration_s
    return result


async def first_event_ms(url: str, body: dict[str, Any], event_type: str | None) -> tuple[float, float]:
    """(time to the first event of ``event_type`` — or the whole answer if the server does not
    stream — and the total time), in ms."""
    started = time.perf_counter()
    first = None
    async with httpx.AsyncClient(timeout=60) as client:
        async with client.stream("POST", url, json=body) as reply:
            streaming = reply.headers.get("content-type", "").startswith("text/event-stream")
            async for line in reply.aiter_lines():
                if first is None and streaming and line.startswith("data:") and event_type:
                    data = line[5:].strip()
                    if data != "[DONE]" and json.loads(data).get("type") == event_type:
                        first = time.perf_counter()
    total = (time.perf_counter() - started) * 1000
    return ((first - started) * 1000 if first else total), total


async def first_marker_ms(url: str, body: dict[str, Any], marker: bytes) -> float:
    """Time (ms) until ``marker`` shows in a streamed answer (the whole answer if it never does),
    read with a bare HTTP/1.1 client, so that 64 of them in parallel cost little CPU."""
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    first = None
    tail = b""
    try:
        writer.write(head + payload)
        await writer.drain()
        while chunk := await reader.read(65536):
            if first is None and marker in tail + chunk:
                first = time.perf_counter()
            tail = chunk[-len(marker) :]
    finally:
        writer.close()
    return ((first or time.perf_counter()) - started) * 1000


async def parallel_first_marker_ms(url: str, body: dict[str, Any], marker: bytes, n: int) -> list[float]:
    return list(await asyncio.gather(*(first_marker_ms(url, body, marker) for _ in range(n))))


async def backend_first_token_ms(backend: str) -> float:
    """The scripted backend's own time to its first content token (streamed chat completion)."""
    started = time.perf_counter()
    body = {
        "model": "scripted-model",
        "stream": True,
        "messages": [{"role": "user", "content": "ttft probe"}],
    }
    async with httpx.AsyncClient(timeout=60) as client:
        async with client.stream("POST", f"{backend}/v1/chat/completions", json=body) as reply:
            async for line in reply.aiter_lines():
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    choices = json.loads(line[5:]).get("choices") or [{}]
                    if choices[0].get("delta", {}).get("content"):
                        return (time.perf_counter() - started) * 1000
    return float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d\\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(95)))
end
"""


def wrk_available() -> bool:
    import shutil

    return shutil.which("wrk") is not None


def wrk_load(
    url: str, body: dict[str, Any], concurrency: int, duration_s: float, script_dir: str
) -> LoadResult:
    """Closed-loop load with wrk (C, light on the CPU the servers need)."""
    import subprocess
    from pathlib import Path

    script = Path(script_dir) / "post.lua"
    script.write_text(_WRK_SCRIPT % json.dumps(json.dumps(body)))
    command = ["wrk", "-t", "2" if concurrency > 1 else "1", "-c", str(concurrency), "-d", f"{duration_s:g}s",
               "--timeout", "120s", "-s", str(script), url]  # fmt: skip
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + 180, check=True
    ).stdout
    line = next(row for row in output.splitlines() if row.startswith("RESULT "))
    requests, errors, duration_us, p50_us, p95_us = (int(x) for x in line.split()[1:])
    result = LoadResult(concurrency, completed=requests - errors, errors=errors, elapsed_s=duration_us / 1e6)
    result.p50_override, result.p95_override = p50_us / 1000, p95_us / 1000
    return result
