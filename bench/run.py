"""Benchmark: this project's `python -m serving` beside stock MLflow serving, in one run.

    python bench/run.py [--quick] [--out bench/results]

Serves the same registered OpenAI Agents SDK model, against the scripted model server, with
(a) stock `mlflow models serve --env-manager local` (1 worker), (b) MLflow's AgentServer with
async handlers, (c) `python -m serving` (1 worker). Measures per-request overhead, throughput
and latency under load, time to first streamed event, memory, launch-to-ready and logging
time; prints a table with ratios to stock, writes JSON and a PNG plot. Loopback only; every
load loop is bounded in requests and time. Run it on a quiet machine.
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from agentship.testing.processes import ServerProcess, free_port, start_scripted_llm, start_server, venv_env  # noqa: E402
from bench._load import (  # noqa: E402
    backend_first_token_ms,
    closed_loop,
    first_event_ms,
    median,
    pct,
    sequential,
    wrk_available,
)
from bench._procs import tree_rss_mib  # noqa: E402

CONTENDERS = ("stock", "agent_server", "agentship")
LEVELS = (1, 8, 32, 64, 256)


def configure_backend(backend: ServerProcess, **behaviour: Any) -> None:
    reply = httpx.post(
        f"{backend.url}/scripted/config", json={"ttft": 0.0, "latency": 0.0, "chunks": 4, **behaviour}
    )
    reply.raise_for_status()


def log_model(env: dict[str, str]) -> tuple[str, float]:
    """Register the example agent; return its URI and the log+register time (s)."""
    os.environ.update(env)
    import mlflow

    from agentship.model_logging import DEFAULT_CONFIGS, load_config, log_agent

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("bench")
    config = load_config(DEFAULT_CONFIGS["openai-agents"])
    started = time.perf_counter()
    logged = log_agent("openai-agents", config, registered_model_name="bench-agent")
    return logged.model_uri, time.perf_counter() - started


def start(name: str, model_uri: str, env: dict[str, str], logs: Path) -> tuple[ServerProcess, float, str]:
    """Start a contender; return it, its launch-to-ready time and its invocation URL."""
    port = free_port()
    py = sys.executable
    if name == "stock":
        command = [
            py,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            model_uri,
            "-p",
            str(port),
            "-w",
            "1",
            "--env-manager",
            "local",
        ]
        health = "/ping"
    elif name == "agent_server":
        command = [
            py,
            "-m",
            "uvicorn",
            "bench.agent_server_app:app",
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
        ]
        health = "/health"
    else:
        command = [py, "-m", "serving", "-m", model_uri, "-p", str(port), "--workers", "1"]
        health = "/ready"
    started = time.perf_counter()
    server = start_server(
        f"bench-{name}",
        command,
        port=port,
        log_dir=logs,
        env=venv_env({**env, "BENCH_MODEL_URI": model_uri}),
        cwd=REPO,
        health_path=health,
        timeout=180,
    )
    return server, time.perf_counter() - started, f"{server.url}/invocations"


def request(text: str, stream: bool = False) -> dict[str, Any]:
    return {"input": [{"role": "user", "content": text}], "stream": stream}


async def measure(
    name: str, server: ServerProcess, url: str, backend: ServerProcess, quick: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n = 60 if quick else 200
    configure_backend(backend)
    await sequential(url, request("warm up"), 20)
    out["idle_rss_mib"] = tree_rss_mib(server.process.pid)
    latencies = await sequential(url, request("hello there"), n)
    out["latency_p50_ms"], out["latency_p95_ms"] = pct(latencies, 0.5), pct(latencies, 0.95)

    configure_backend(backend, latency=0.5)
    out["load"] = []
    peak_rss = out["idle_rss_mib"]
    for level in LEVELS:
        duration = 4.0 if quick else 8.0
        task = asyncio.create_task(
            closed_loop(url, request("under load"), level, duration, max_requests=level * 40)
        )
        while not task.done():
            peak_rss = max(peak_rss, tree_rss_mib(server.process.pid))
            await asyncio.sleep(0.5)
        result = task.result().summary()
        out["load"].append(result)
        print(
            f"  {name:13s} c={level:<4d} {result['throughput_rps']:7.1f} req/s  p50 {result['p50_ms']:7.0f} ms  p95 {result['p95_ms']:7.0f} ms  errors {result['errors']}",
            flush=True,
        )
        await asyncio.sleep(1.0)
    out["loaded_rss_mib"] = peak_rss

    configure_backend(backend, latency=2.0, chunks=20)
    firsts, totals = [], []
    for _ in range(3 if quick else 5):
        first, total = await first_event_ms(
            url, request("stream a long answer", stream=True), "response.output_text.delta"
        )
        firsts.append(first)
        totals.append(total)
    out["first_event_ms"], out["stream_total_ms"] = median(firsts), median(totals)
    return out


async def direct_backend(backend: ServerProcess, n: int) -> dict[str, float]:
    configure_backend(backend)
    body = {
        "model": "scripted-model",
        "stream": True,
        "messages": [{"role": "user", "content": "hello there"}],
    }
    latencies = []
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(n):
            started = time.perf_counter()
            async with client.stream("POST", f"{backend.url}/v1/chat/completions", json=body) as reply:
                async for _line in reply.aiter_lines():
                    pass
            latencies.append((time.perf_counter() - started) * 1000)
    configure_backend(backend, latency=2.0, chunks=20)
    ttft = median([await backend_first_token_ms(backend.url) for _ in range(5)])
    return {"p50_ms": pct(latencies, 0.5), "p95_ms": pct(latencies, 0.95), "first_token_ms": ttft}


def report(results: dict[str, Any]) -> str:
    direct = results["direct_backend"]
    rows = [("metric", *CONTENDERS, "agentship/stock")]

    def add(label: str, values: list[float], fmt: str = "{:.1f}") -> None:
        ratio = f"{values[2] / values[0]:.2f}x" if values[0] else "-"
        rows.append((label, *[fmt.format(v) for v in values], ratio))

    c = [results["servers"][n] for n in CONTENDERS]
    add("overhead p50 (ms)", [s["latency_p50_ms"] - direct["p50_ms"] for s in c])
    add("overhead p95 (ms)", [s["latency_p95_ms"] - direct["p95_ms"] for s in c])
    for i, level in enumerate(LEVELS):
        add(f"req/s @ {level} (500 ms backend)", [s["load"][i]["throughput_rps"] for s in c])
        add(f"p50 ms @ {level}", [s["load"][i]["p50_ms"] for s in c], "{:.0f}")
        add(f"errors @ {level}", [float(s["load"][i]["errors"]) for s in c], "{:.0f}")
    add(
        "first event (ms); backend first token {:.0f} ms".format(direct["first_token_ms"]),
        [s["first_event_ms"] for s in c],
        "{:.0f}",
    )
    add("idle RSS (MiB)", [s["idle_rss_mib"] for s in c], "{:.0f}")
    add("loaded RSS (MiB)", [s["loaded_rss_mib"] for s in c], "{:.0f}")
    add("launch to ready (s)", [s["ready_s"] for s in c], "{:.2f}")
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    lines.append(
        f"log_model + register: {results['log_register_s']:.2f} s; direct backend p50 {direct['p50_ms']:.1f} ms"
    )
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in CONTENDERS:
        load = results["servers"][name]["load"]
        left.plot(LEVELS, [r["throughput_rps"] for r in load], marker="o", label=name)
        right.plot(LEVELS, [r["p50_ms"] for r in load], marker="o", label=name)
    for axis, title in ((left, "throughput (req/s)"), (right, "p50 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients (500 ms backend)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    right.set_yscale("log")
    left.legend()
    fig.suptitle(f"agentship vs stock MLflow serving — {results['date']}, {results['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="agentship-bench-"))
    logs = work / "logs"
    backend = start_scripted_llm(logs)
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "MLFLOW_EXPERIMENT_NAME": "bench-traces",
        "OPENAI_BASE_URL": backend.url + "/v1",
    }
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "load_generator": "wrk"
        if wrk_available()
        else "python-httpx (install wrk for lighter load generation)",
        "servers": {},
    }
    try:
        model_uri, results["log_register_s"] = log_model(env)
        results["direct_backend"] = await direct_backend(backend, 60 if args.quick else 200)
        for name in CONTENDERS:
            server, ready_s, url = start(name, model_uri, env, logs)
            try:
                print(f"{name}: ready in {ready_s:.2f}s", flush=True)
                results["servers"][name] = {
                    "ready_s": ready_s,
                    **await measure(name, server, url, backend, args.quick),
                }
            finally:
                server.stop()
    finally:
        backend.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter phases (a smoke run, not for figures)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    table = report(results)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"bench-{stamp}.json").write_text(json.dumps({**results, "table": table}, indent=2))
    plot(results, out / f"bench-{stamp}.png")
    print(f"wrote {out / f'bench-{stamp}.json'} and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
