"""Launch to ready of ``python -m serving``, with the venv's bytecode and without it.

    .venv/bin/python bench/launch.py [--runs 3] [--imports N]

Logs the example agent into a fresh SQLite store, then starts the server on it ``--runs`` times
each way and times process start to ``/ready``. "Without" points ``PYTHONPYCACHEPREFIX`` at an
empty directory, so every module is compiled from source, as when a venv was installed without
bytecode and ``PYTHONDONTWRITEBYTECODE`` is set.

``--imports N`` starts it once more under ``python -X importtime`` (which slows every import a
little) and prints the N packages whose imports took longest, each its outermost import's
cumulative time (packages nest: the Agents SDK's includes openai's), and which of the modules a
request does not need at start were imported.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agentship.testing.processes import free_port, start_server, venv_env  # noqa: E402
from bench._servers import log_model  # noqa: E402

LAZY = ("a2a", "agentship.server.protocols.a2a", "agentship.llama_stack", "llama_stack_client")
"""What serving this model does not need at start. (alembic is not listed: MLflow's SQL tracking
store imports it, and this run's traces would go to SQLite in-process; agentship's own
migrations import it only to create or upgrade a schema.)"""


def launch(model: str, logs: Path, env: dict[str, str], flags: tuple[str, ...] = ()) -> tuple[float, Path]:
    port = free_port()
    command = [sys.executable, *flags, "-m", "serving", "-m", model, "-p", str(port)]
    started = time.perf_counter()
    server = start_server(
        f"launch-{port}", command, port=port, log_dir=logs, env=venv_env(env), cwd=REPO, health_path="/ready"
    )
    ready = time.perf_counter() - started
    server.stop()
    return ready, server.log_path


def import_times(log: str) -> dict[str, float]:
    """Each imported module's cumulative import time in seconds, from ``-X importtime`` lines."""
    times = {}
    for line in log.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if cumulative.strip().isdigit():
            times[name.strip()] = int(cumulative) / 1e6
    return times


def by_package(times: dict[str, float]) -> dict[str, float]:
    """Each top-level package's longest (outermost) import. Pure."""
    packages: dict[str, float] = {}
    for name, seconds in times.items():
        package = name.split(".")[0]
        packages[package] = max(packages.get(package, 0.0), seconds)
    return packages


def main(runs: int, imports: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="agentship-launch-"))
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "OPENAI_API_KEY": "sk-unused",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "MLFLOW_TRACE_SAMPLING_RATIO": "0",
    }
    model, _ = log_model(env, work)
    empty = work / "no-bytecode"
    empty.mkdir()
    for label, extra in (("bytecode", {}), ("compiling", {"PYTHONPYCACHEPREFIX": str(empty)})):
        times = [launch(model, work / "logs", {**env, **extra})[0] for _ in range(runs)]
        print(f"{label:>9}: " + ", ".join(f"{t:.2f} s" for t in times))
    if imports:
        ready, log = launch(model, work / "logs", env, ("-X", "importtime"))
        modules = import_times(log.read_text(errors="replace"))
        top = sorted(by_package(modules).items(), key=lambda item: -item[1])[:imports]
        print(f"importtime: ready after {ready:.2f} s; imports, outermost cumulative:")
        print("  " + ", ".join(f"{package} {seconds:.2f} s" for package, seconds in top))
        loaded = [name for name in modules if any(name == m or name.startswith(m + ".") for m in LAZY)]
        print(f"  of {', '.join(LAZY)}: {', '.join(sorted(loaded)) or 'none'} imported")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--imports", type=int, default=0, help="and once under -X importtime: the N slowest")
    args = parser.parse_args()
    main(args.runs, args.imports)
