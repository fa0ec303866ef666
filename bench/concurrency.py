"""Why CPU per request rises with the clients: one replica profiled at each client count.

    bash bench/setup.sh && .venv/bin/python bench/concurrency.py [--clients 16 64] [--seconds 20]
        [--top 20]

Serves the example agent as ``bench/run.py``'s section "servers" does (``python -m serving``, 1
worker, traces into the local SQLite store), and loads it with the tool request (2 model calls,
the tool, a 200-word answer) from wrk at each client count in turn. For each load it reads the
server's CPU per request (the CPU rate in the steady part of the load over the throughput) and
samples the server with py-spy (200 Hz, only the thread holding the GIL: a thread waiting for
it would count as busy). It prints, for the frames whose
cost moved most between the first count and the last, their inclusive CPU per request (their
share of the samples × CPU per request) at each count.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agentship.testing.processes import start_scripted_llm  # noqa: E402
from bench import _workloads as w  # noqa: E402
from bench._servers import Stores, configure_backend, log_model, start  # noqa: E402
from bench.store_profile import profiler, shares  # noqa: E402


def per_request(collapsed: Path, cpu_ms: float) -> dict[str, float]:
    """Each frame's inclusive CPU per request, in ms."""
    total, inclusive = shares(collapsed)
    return {frame: n / total * cpu_ms for frame, n in inclusive.items()} if total else {}


async def measure(clients: list[int], seconds: float, work: Path) -> list[tuple[int, dict[str, Any], Path]]:
    logs = work / "logs"
    backend = start_scripted_llm(logs)
    contender = None
    try:
        env = {"MLFLOW_EXPERIMENT_NAME": "concurrency", "OPENAI_BASE_URL": backend.url + "/v1"}
        stores = Stores(sqlite_uri=f"sqlite:///{work / 'mlflow.db'}")
        model, _ = log_model({**env, "MLFLOW_TRACKING_URI": stores.sqlite_uri}, work)
        contender = start(
            "agentship", "sqlite", model, env, stores, logs, extra={"AGENTSHIP_STATE_URL": "none"}
        )
        await w.warm_up(contender, backend)
        configure_backend(backend)
        await w.under_load(contender, stores, w.TOOL_REQUEST, max(clients), 3.0)  # warm at the largest
        out = []
        for count in clients:
            stacks = work / f"clients-{count}.txt"
            spy = profiler(contender.server.process.pid, stacks, gil=True)
            summary = await w.under_load(contender, stores, w.TOOL_REQUEST, count, seconds)
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=120)
            out.append((count, summary, stacks))
        return out
    finally:
        if contender is not None:
            contender.server.stop()
        backend.stop()


def report(results: list[tuple[int, dict[str, Any], Path]], top: int) -> None:
    for count, summary, _ in results:
        print(
            f"{count:3d} clients: {summary['cpu_ms']:.1f} ms CPU per request, "
            f"{summary['throughput_rps']:.1f} req/s, p50 {summary['p50_ms']:.0f} ms, {summary['errors']} errors"
        )
    first, last = results[0], results[-1]
    costs = [per_request(stacks, summary["cpu_ms"]) for _, summary, stacks in results]
    moved = sorted(
        costs[0].keys() | costs[-1].keys(), key=lambda f: -abs(costs[-1].get(f, 0) - costs[0].get(f, 0))
    )
    header = "  ".join(f"{count:>6d}" for count, _, _ in results)
    print(
        f"\nframes whose CPU per request moved most, {first[0]} → {last[0]} clients (inclusive ms per request)"
    )
    print(f"  {header}  {'change':>7}  frame")
    for frame in moved[:top]:
        row = "  ".join(f"{cost.get(frame, 0.0):6.2f}" for cost in costs)
        print(f"  {row}  {costs[-1].get(frame, 0) - costs[0].get(frame, 0):+7.2f}  {frame}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agentship-concurrency-"))
    report(asyncio.run(measure(args.clients, args.seconds, work)), args.top)
    print(f"\nprofiles (py-spy's collapsed stacks): {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
