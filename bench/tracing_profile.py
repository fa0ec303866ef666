"""Where tracing's CPU per request goes: one replica traced to a remote server, then untraced.

    bash bench/setup.sh && .venv/bin/python bench/tracing_profile.py [--clients 16] [--seconds 20]
        [--top 25] [--stacks DIR]

Serves the example agent as ``bench/run.py``'s section "servers" does (``python -m serving``, 1
worker), traces going to a tracking server on PostgreSQL, then with tracing sampled out, and
loads each with the tool request (2 model calls, the tool, a 200-word answer) from wrk. For each
variant it prints the server's CPU per request and each thread's (``/proc``, from the load's
start until its traces are written): the agent's event loop, the trace export thread, the HTTP
server's loop; and the export thread's steps, each timed on that thread's CPU clock
(``bench/_timed_export_serve.py``), per trace. Then, per thread, the frames whose cost differs
most between the two variants.

A frame's cost is its share of the thread's py-spy samples (200 Hz, with thread ids) times the
thread's CPU per request. Only shares within one thread are used: on a saturated machine a
thread that is runnable but not running still looks busy to a sampler, so the samples' count is
not CPU, and syscall-heavy frames (a socket send that wakes another process) look dearer when
more processes compete, as they do with a tracking server on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agentship.testing.processes import start_scripted_llm  # noqa: E402
from bench import _workloads as w  # noqa: E402
from bench._servers import Contender, Stores, configure_backend, log_model, start  # noqa: E402
from bench.run import start_remote  # noqa: E402

_THREAD = re.compile(r"^thread \((\d+)\): (.*)$")
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[int, float]:
    """Each thread's CPU seconds so far (user + system)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) * TICK_S
    return out


def sampler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "-p", str(pid), "-r", "200", "-f", "raw", "-t", "-o", str(out), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def by_thread(collapsed: Path) -> tuple[dict[int, str], dict[int, Counter[str]], dict[int, int]]:
    """Thread names, each thread's inclusive sample count per frame, and its total samples."""
    names: dict[int, str] = {}
    frames: dict[int, Counter[str]] = defaultdict(Counter)
    totals: Counter[int] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        head, *rest = stack.split(";")
        match = _THREAD.match(head)
        if match is None:
            continue
        tid = int(match.group(1))
        names[tid] = match.group(2)
        totals[tid] += int(count)
        for frame in set(rest):
            frames[tid][frame] += int(count)
    return names, frames, dict(totals)


Profile = dict[str, tuple[float, dict[str, float]]]
"""Per thread name: CPU ms per request, and each frame's inclusive CPU ms per request."""


async def profile_one(
    contender: Contender, stores: Stores, clients: int, seconds: float, work: Path
) -> tuple[dict[str, Any], Profile]:
    pid = contender.server.process.pid
    stacks = work / f"{contender.variant}.txt"
    times = work / "export-times.jsonl"
    timed = contender.variant == "remote"
    if timed:
        contender.server.process.send_signal(signal.SIGUSR2)  # the warm-up's steps, set aside
    before = thread_cpu_s(pid)
    spy = sampler(pid, stacks)
    summary = await w.under_load(contender, stores, w.TOOL_REQUEST, clients, seconds)
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=120)
    after = thread_cpu_s(pid)
    if timed:
        size = times.stat().st_size
        contender.server.process.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 10
        while times.stat().st_size == size:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server wrote no export times to {times}: see its log")
            await asyncio.sleep(0.05)
        summary["export"] = json.loads(times.read_text().splitlines()[-1])
    names, frames, totals = by_thread(stacks)
    done = max(summary["completed"], 1)
    profile: Profile = {}
    for tid, cpu in after.items():
        ms = (cpu - before.get(tid, 0.0)) / done * 1000
        name = names.get(tid, "main" if tid == pid else f"thread {tid}")
        if ms < 0.05:
            continue
        total = totals.get(tid, 0)
        costs = {frame: n / total * ms for frame, n in frames.get(tid, Counter()).items()} if total else {}
        profile[name] = (ms, costs)
    return summary, profile


async def measure(
    clients: int, seconds: float, work: Path, keep: Path | None
) -> dict[str, tuple[dict[str, Any], Profile]]:
    logs = work / "logs"
    backend = start_scripted_llm(logs)
    stores = Stores(sqlite_uri=f"sqlite:///{work / 'mlflow.db'}")
    remote = start_remote(stores, work, logs)
    if remote is None:
        raise SystemExit("PostgreSQL is needed for the tracking server")
    out = {}
    try:
        env = {"MLFLOW_EXPERIMENT_NAME": "tracing-profile", "OPENAI_BASE_URL": backend.url + "/v1"}
        model, _ = log_model({**env, "MLFLOW_TRACKING_URI": stores.sqlite_uri}, work)
        for variant in ("remote", "off"):
            timed = (
                [sys.executable, str(REPO / "bench" / "_timed_export_serve.py")]
                if variant == "remote"
                else None
            )
            extra = {
                "AGENTSHIP_STATE_URL": "none",
                "AGENTSHIP_EXPORT_TIMES": str(work / "export-times.jsonl"),
            }
            contender = start("agentship", variant, model, env, stores, logs, extra=extra, launcher=timed)
            try:
                await w.warm_up(contender, backend)
                configure_backend(backend)
                await w.under_load(contender, stores, w.TOOL_REQUEST, clients, 3.0)
                out[variant] = await profile_one(contender, stores, clients, seconds, work)
                if keep:
                    keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(work / f"{variant}.txt", keep / f"{variant}.txt")
            finally:
                contender.server.stop()
    finally:
        remote.tracking.stop()
        remote.postgres.stop()
        backend.stop()
    return out


def report(results: dict[str, tuple[dict[str, Any], Profile]], top: int) -> None:
    for variant, (summary, profile) in results.items():
        threads = ", ".join(
            f"{name} {ms:.2f}" for name, (ms, _) in sorted(profile.items(), key=lambda t: -t[1][0])
        )
        print(
            f"{variant:6s}: {summary['cpu_ms']:.1f} ms CPU per request, {summary['throughput_rps']:.1f} req/s, "
            f"{summary['errors']} errors; threads, ms per request: {threads}"
        )
    export = results["remote"][0]["export"]
    traces = max(export.get("start_trace call", {}).get("calls", 0), 1)
    steps = ", ".join(f"{step} {entry['cpu_s'] / traces * 1000:.3f}" for step, entry in export.items())
    print(f"\nthe export thread's steps, CPU ms per trace ({traces} traces): {steps}")
    traced, untraced = results["remote"][1], results["off"][1]
    for name, (ms, costs) in sorted(traced.items(), key=lambda t: -t[1][0]):
        base_ms, base = untraced.get(name, (0.0, {}))
        print(
            f"\n{name}: {ms:.2f} ms per request traced, {base_ms:.2f} untraced; frames, inclusive ms per request"
        )
        keys = sorted(costs.keys() | base.keys(), key=lambda k: -(costs.get(k, 0.0) - base.get(k, 0.0)))
        for key in keys[:top]:
            a, b = costs.get(key, 0.0), base.get(key, 0.0)
            print(f"  {a:6.2f} {b:6.2f} {a - b:+6.2f}  {key}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--stacks", type=Path, help="keep py-spy's collapsed stacks in this directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentship-tracing-profile-") as tmp:
        report(asyncio.run(measure(args.clients, args.seconds, Path(tmp), args.stacks)), args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
