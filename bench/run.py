"""Benchmark: this project's `python -m serving` beside stock MLflow serving, in one run.

    bash bench/setup.sh && .venv/bin/python bench/run.py [--quick] [--only SECTION] [--out bench/results]

Serves the same logged OpenAI Agents SDK model, against the scripted model server on loopback,
with (a) stock `mlflow models serve --env-manager local`, (b) MLflow's AgentServer with async
handlers over the same agent, (c) `python -m serving`.

The headline (section "stateful") is what users run: 64 conversations of 5 turns at once, each
turn the realistic request (2 model calls and a tool call, a 200-word answer), on 2 replicas of
each contender, traces (inputs included) going to a remote `mlflow server` on PostgreSQL.
agentship keeps the conversations in a PostgreSQL state store (continued with
`previous_response_id`, and in Conversations API conversations); stock and AgentServer keep
nothing, so their client resends the history, as agentship's does with `store: false`. CPU per
turn is the replicas' process trees' plus the PostgreSQL server's (from /proc); one
conversation at a time gives the store's own latency.

Section "servers": 1 worker each, traces into the local SQLite store, into the remote server,
and off; CPU per tool request, throughput and latency at 1, 16 and 64 clients, 1-call requests
against a 500 ms backend, overhead at backend latency 0, first streamed event with 64 streams,
launch to ready after a warm start, idle RSS, `--workers 2`. Section "memory": RSS after 100
and 10,000 requests (1,000 conversations), and with 64 clients reading a byte a second.

Contenders run in alternation, twice (once with --quick), and every figure reports its spread.
Load comes from wrk (bench/setup.sh installs it), else a Python generator; the JSON says which.
About 20 minutes; --quick about 7. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from agentship.testing.postgres import PostgresServer  # noqa: E402
from agentship.testing.processes import ServerProcess, start_scripted_llm  # noqa: E402
from bench import _workloads as w  # noqa: E402
from bench._load import backend_first_token_ms, median, pct, wrk_available  # noqa: E402
from bench._memory import memory  # noqa: E402
from bench._procs import cpu_s, machine_quiet, tree_rss_mib  # noqa: E402
from bench._report import plot, report  # noqa: E402
from bench._servers import CONTENDERS, VARIANTS, Contender, Stores, configure_backend, log_model, start  # noqa: E402
from bench._stateful import conversations, postgres_pid  # noqa: E402

STATEFUL_RUNS = (
    "stock:resend:all",
    "agent_server:resend:all",
    "agentship:previous_response_id:all",
    "agentship:conversation:all",
    "agentship:resend:all",
    "agentship:previous_response_id:1",
    "agentship:conversation:1",
    "agentship:resend:1",
)
"""contender:mode:how many at once (all the conversations, or 1 at a time)."""


SECTIONS = ("stateful", "servers", "memory")
"""The headline conversations; the single requests, load and start of each contender; memory."""


class Plan:
    def __init__(self, quick: bool) -> None:
        self.rounds = 1 if quick else 2
        self.sequential = 12 if quick else 40
        self.seconds = 3.0 if quick else 5.0
        self.overhead_n = 20 if quick else 40
        self.streams = 64
        self.conversations, self.turns = (16, 3) if quick else (64, 5)


async def direct_backend(backend: ServerProcess, n: int, parallel: int) -> dict[str, float]:
    """The scripted backend on its own: a 1-call answer's latency, and its first token."""
    configure_backend(backend)
    body = {"model": "scripted-model", "messages": [{"role": "user", "content": "hello there"}]}
    latencies = []
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(n):
            started = time.perf_counter()
            (await client.post(f"{backend.url}/v1/chat/completions", json=body)).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
    configure_backend(backend, latency=1.0, chunks=20)
    single = median([await backend_first_token_ms(backend.url) for _ in range(3)])
    many = await asyncio.gather(*(backend_first_token_ms(backend.url) for _ in range(parallel)))
    configure_backend(backend)
    return {"p50_ms": pct(latencies, 0.5), "first_token_ms": single, "first_token_64_ms": median(list(many))}


async def measure_sqlite(c: Contender, stores: Stores, backend: ServerProcess, plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {"ready_s": c.ready_s}
    await w.warm_up(c, backend)
    out["idle_rss_mib"] = tree_rss_mib(c.server.process.pid)
    out["overhead"] = await w.overhead(c, backend, plan.overhead_n)
    out["tool_1"] = await w.cpu_sequential(c, stores, backend, plan.sequential)
    for clients in (16, 64):
        out[f"tool_{clients}"] = await w.under_load(c, stores, w.TOOL_REQUEST, clients, plan.seconds)
    configure_backend(backend, latency=0.5)
    out["one_call_64"] = await w.under_load(c, stores, w.ONE_CALL, 64, plan.seconds + 1)
    configure_backend(backend)
    out["first_event_64_ms"] = await w.streams(c, backend, plan.streams)
    out["loaded_rss_mib"] = tree_rss_mib(c.server.process.pid)
    return out


async def measure_cpu(c: Contender, stores: Stores, backend: ServerProcess, plan: Plan) -> dict[str, Any]:
    await w.warm_up(c, backend)
    return {"ready_s": c.ready_s, "tool_1": await w.cpu_sequential(c, stores, backend, plan.sequential)}


async def rounds(
    model: str, env: dict[str, str], stores: Stores, backend: ServerProcess, logs: Path, plan: Plan
) -> dict[str, Any]:
    """Every contender × variant, in alternation, ``plan.rounds`` times."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {n: {v: [] for v in VARIANTS} for n in CONTENDERS}
    for number in range(plan.rounds):
        order = CONTENDERS if number % 2 == 0 else tuple(reversed(CONTENDERS))
        for variant in VARIANTS:
            if variant == "remote" and stores.remote_url is None:
                continue
            for name in order:
                contender = start(name, variant, model, env, stores, logs)
                try:
                    measured = measure_sqlite if variant == "sqlite" else measure_cpu
                    result = await measured(contender, stores, backend, plan)
                finally:
                    contender.server.stop()
                runs[name][variant].append(result)
                print(f"  round {number + 1} {name:12s} {variant:6s} cpu/request {result['tool_1']['cpu_ms']:6.1f} ms"
                      f"  ready {contender.ready_s:.2f}s", flush=True)  # fmt: skip
    return runs


async def workers(
    model: str, env: dict[str, str], stores: Stores, backend: ServerProcess, logs: Path, plan: Plan
) -> dict[str, Any]:
    """``python -m serving --workers 2`` against 1 worker, the tool request at 64 clients."""
    out: dict[str, list[float]] = {"1": [], "2": []}
    for _ in range(plan.rounds):
        for count in (1, 2):
            c = start("agentship", "sqlite", model, env, stores, logs, workers=count)
            try:
                await w.warm_up(c, backend)
                out[str(count)].append(
                    (await w.under_load(c, stores, w.TOOL_REQUEST, 64, plan.seconds))["throughput_rps"]
                )
            finally:
                c.server.stop()
    return out


async def stateful(
    model: str,
    env: dict[str, str],
    stores: Stores,
    backend: ServerProcess,
    logs: Path,
    plan: Plan,
    remote: Remote,
) -> dict[str, Any]:
    """The headline: conversations of the tool request on 2 replicas of each contender, traces
    to the remote tracking server; agentship keeps them in PostgreSQL, the others are resent the
    history. CPU per turn: the replicas' and the PostgreSQL server's (the tracking server's is
    reported beside it)."""
    extra = {"AGENTSHIP_STATE_URL": remote.state_url}
    pairs = {
        name: [start(name, "remote", model, env, stores, logs, extra=extra) for _ in range(2)]
        for name in CONTENDERS
    }
    also = [postgres_pid(remote.postgres.data)]
    try:
        for replicas in pairs.values():
            for replica in replicas:
                await w.warm_up(replica, backend)
        configure_backend(backend)
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key in STATEFUL_RUNS}
        for number in range(plan.rounds):
            for key in STATEFUL_RUNS if number % 2 == 0 else reversed(STATEFUL_RUNS):
                name, mode, alone = key.split(":")
                await machine_quiet()
                tracking_before = cpu_s([remote.tracking.process.pid])
                if alone == "1":  # one at a time: no queueing, the store's own latency
                    result = await conversations(pairs[name], mode, 8, plan.turns, parallel=1, also=also)
                else:
                    result = await conversations(pairs[name], mode, plan.conversations, plan.turns, also=also)
                result["tracking_cpu_ms"] = (
                    (cpu_s([remote.tracking.process.pid]) - tracking_before) / result["requests"] * 1000
                )
                runs[key].append(result)
                print(f"  round {number + 1} {key:36s} cpu/turn {result['cpu_ms']:6.1f} ms"
                      f"  p50 {result['p50_ms']:6.0f} ms  errors {result['errors']}", flush=True)  # fmt: skip
        return {"tracing": "remote", "turns": plan.turns, "conversations": plan.conversations, "runs": runs}
    finally:
        configure_backend(backend)
        for replicas in pairs.values():
            for replica in replicas:
                replica.server.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan(args.quick)
    work = Path(tempfile.mkdtemp(prefix="agentship-bench-"))
    logs = work / "logs"
    backend = start_scripted_llm(logs)
    env = {"MLFLOW_EXPERIMENT_NAME": "bench-traces", "OPENAI_BASE_URL": backend.url + "/v1",
           "AGENTSHIP_STATE_URL": "none"}  # fmt: skip
    stores = Stores(sqlite_uri=f"sqlite:///{work / 'mlflow.db'}")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "versions": {p: version(p) for p in ("mlflow", "openai-agents", "openai")},
        "load_generator": "wrk" if wrk_available() else "python-httpx (run bench/setup.sh for wrk)",
        "rounds": plan.rounds,
    }
    remote = None
    try:
        model, results["log_register_s"] = log_model({**env, "MLFLOW_TRACKING_URI": stores.sqlite_uri}, work)
        remote = start_remote(stores, work, logs)
        results["direct_backend"] = await direct_backend(backend, 40, plan.streams)
        only = set(args.only or SECTIONS)
        if remote is not None and "stateful" in only:
            results["stateful"] = await stateful(model, env, stores, backend, logs, plan, remote)
        if "servers" in only:
            results["servers"] = await rounds(model, env, stores, backend, logs, plan)
            results["workers"] = await workers(model, env, stores, backend, logs, plan)
        if remote is not None and "memory" in only and not args.quick:
            results["memory"] = await memory(model, env, stores, backend, logs, remote)
    finally:
        backend.stop()
        if remote is not None:
            from agentship.testing.postgres import stop_postgres

            remote.tracking.stop()
            stop_postgres(remote.postgres)
    return results


@dataclass
class Remote:
    """PostgreSQL, the tracking server on it, and the state database on it."""

    postgres: PostgresServer
    tracking: ServerProcess
    state_url: str


def start_remote(stores: Stores, work: Path, logs: Path) -> Remote | None:
    """PostgreSQL, a tracking server on it and a state database; None without PostgreSQL."""
    try:
        from agentship.testing.postgres import start_postgres
        from agentship.testing.tracking_server import start_tracking_server

        postgres = start_postgres()
    except Exception as exc:  # noqa: BLE001 - the remote variant is skipped, and said so
        print(f"no PostgreSQL ({exc}): skipping the remote-store variant and the stateful workload")
        return None
    tracking = start_tracking_server(postgres, work / "tracking", logs, database="bench_tracking")
    stores.remote_url = tracking.url
    stores.remote_db = postgres.url("bench_tracking", driver="postgresql")
    return Remote(postgres, tracking, postgres.url(postgres.create_database("bench_state")))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="one round, shorter phases (a smoke run, not for figures)"
    )
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section (again for more); all by default",
    )
    args = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(main_async(args))
    results["duration_s"] = time.monotonic() - started
    table = report(results)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"bench-{stamp}.json").write_text(json.dumps({**results, "table": table}, indent=2))
    plot(results, out / f"bench-{stamp}.png")
    print(f"wrote {out / f'bench-{stamp}.json'} and .png ({results['duration_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
