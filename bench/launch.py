"""Launch to ready of ``python -m serving``, with the venv's bytecode and without it.

    .venv/bin/python bench/launch.py [--runs 3]

Logs the example agent into a fresh SQLite store, then starts the server on it ``--runs`` times
each way and times process start to ``/ready``. "Without" points ``PYTHONPYCACHEPREFIX`` at an
empty directory, so every module is compiled from source, as when a venv was installed without
bytecode and ``PYTHONDONTWRITEBYTECODE`` is set.
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


def launch(model: str, logs: Path, env: dict[str, str]) -> float:
    port = free_port()
    command = [sys.executable, "-m", "serving", "-m", model, "-p", str(port)]
    started = time.perf_counter()
    server = start_server(
        f"launch-{port}", command, port=port, log_dir=logs, env=venv_env(env), cwd=REPO, health_path="/ready"
    )
    ready = time.perf_counter() - started
    server.stop()
    return ready


def main(runs: int) -> None:
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
        times = [launch(model, work / "logs", {**env, **extra}) for _ in range(runs)]
        print(f"{label:>9}: " + ", ".join(f"{t:.2f} s" for t in times))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    main(parser.parse_args().runs)
