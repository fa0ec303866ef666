"""The workloads, each measured against one running contender. CPU is the server's process tree's,
read from /proc, so the load generator and the scripted backend sharing the cores do not count."""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import Any

from agentship.testing.processes import ServerProcess
from bench._load import (
    LoadResult,
    closed_loop,
    median,
    parallel_first_marker_ms,
    pct,
    sequential,
    wrk_available,
    wrk_load,
)
from bench._procs import cpu_s, machine_quiet
from bench._servers import Contender, Stores, configure_backend

TOOL_REQUEST = "What is the weather in Paris? [[words=200 chunks=200]]"
"""The realistic request: 2 model calls and the get_weather tool, a 200-word answer."""
ONE_CALL = "hello there"


def body(text: str, stream: bool = False) -> dict[str, Any]:
    return {"input": [{"role": "user", "content": text}], "stream": stream}


async def settle(contender: Contender, stores: Stores, traces_before: int, expected: int) -> int:
    """Wait for the requests' traces to be written and the server to go quiet; the new traces."""
    deadline = time.monotonic() + 15
    new, last_change = 0, time.monotonic()
    while contender.variant != "off" and time.monotonic() < deadline:
        now = stores.trace_count(contender.variant) - traces_before
        if now != new:
            new, last_change = now, time.monotonic()
        if new >= expected and time.monotonic() - last_change > 0.6:
            break
        await asyncio.sleep(0.2)
    quiet = cpu_s(contender.pids)
    for _ in range(20):  # the export threads finish what they were writing
        await asyncio.sleep(0.3)
        if (now_cpu := cpu_s(contender.pids)) - quiet < 0.005:
            break
        quiet = now_cpu
    return new


async def warm_up(contender: Contender, backend: ServerProcess) -> None:
    configure_backend(backend)
    await sequential(contender.url, body(TOOL_REQUEST), 8)
    await sequential(contender.url, body(ONE_CALL), 8)


async def cpu_sequential(
    contender: Contender, stores: Stores, backend: ServerProcess, n: int
) -> dict[str, Any]:
    """``n`` tool requests one after another: CPU per request, latency, traces written."""
    configure_backend(backend)
    await settle(contender, stores, stores.trace_count(contender.variant), 0)
    await machine_quiet()  # nothing else (a tracking server still writing) shares the cores
    traces_before = stores.trace_count(contender.variant)
    cpu_before = cpu_s(contender.pids)
    latencies = await sequential(contender.url, body(TOOL_REQUEST), n)
    traces = await settle(contender, stores, traces_before, n)
    cpu = cpu_s(contender.pids) - cpu_before
    return {
        "cpu_ms": cpu / n * 1000,
        "throughput_rps": n / (sum(latencies) / 1000),
        "p50_ms": pct(latencies, 0.5),
        "p95_ms": pct(latencies, 0.95),
        "traces_per_request": traces / n,
    }


async def load(url: str, text: str, clients: int, seconds: float) -> LoadResult:
    if wrk_available():
        with tempfile.TemporaryDirectory() as scratch:
            return await asyncio.to_thread(wrk_load, url, body(text), clients, seconds, scratch)
    return await closed_loop(url, body(text), clients, seconds, max_requests=clients * 200)


async def _cpu_rate(pids: list[int], start_after: float, until: float) -> float:
    """The process tree's CPU seconds per second between ``start_after`` and ``until`` seconds
    from now: the steady state of a load, without its ramp-up or the work left in flight."""
    await asyncio.sleep(start_after)
    cpu, started = cpu_s(pids), time.monotonic()
    await asyncio.sleep(until - start_after)
    return (cpu_s(pids) - cpu) / (time.monotonic() - started)


async def under_load(
    contender: Contender,
    stores: Stores,
    text: str,
    clients: int,
    seconds: float,
    expected_traces: bool = True,
) -> dict[str, Any]:
    """Closed-loop load for ``seconds``: throughput, latency, and CPU per request, the CPU rate in
    the steady part of the run (after 1 s, until just before the end) over the throughput."""
    await machine_quiet()
    traces_before = stores.trace_count(contender.variant)
    result, rate = await asyncio.gather(
        load(contender.url, text, clients, seconds), _cpu_rate(contender.pids, 1.0, seconds - 0.2)
    )
    summary = result.summary()
    done = max(1, summary["completed"])
    traces = await settle(contender, stores, traces_before, done if expected_traces else 0)
    summary["cpu_ms"] = rate / max(summary["throughput_rps"], 1e-9) * 1000
    summary["traces_per_request"] = traces / done
    return summary


async def overhead(contender: Contender, backend: ServerProcess, n: int) -> dict[str, float]:
    """Latency of a 1-call request with the backend answering at once (its own time is subtracted)."""
    configure_backend(backend)
    latencies = await sequential(contender.url, body(ONE_CALL), n)
    return {"p50_ms": pct(latencies, 0.5), "p95_ms": pct(latencies, 0.95)}


async def streams(contender: Contender, backend: ServerProcess, parallel: int) -> float:
    """Median time to the first text delta over ``parallel`` streams at once."""
    configure_backend(backend, latency=1.0, chunks=20)
    firsts = await parallel_first_marker_ms(
        contender.url, body("stream a long answer", stream=True), b"response.output_text.delta", parallel
    )
    configure_backend(backend)
    return median(firsts)
