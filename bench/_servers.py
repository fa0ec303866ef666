"""The contenders, started the same way for every variant: the same model directory, the same
scripted backend, tracing into the same kind of store."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env

REPO = Path(__file__).resolve().parents[1]
CONTENDERS = ("stock", "agent_server", "agentship")
VARIANTS = ("sqlite", "remote", "off")
"""Where traces go: the local SQLite store, a remote ``mlflow server`` on PostgreSQL, nowhere."""


@dataclass
class Stores:
    """The tracking stores of the run: a SQLite file, and a tracking server with its database."""

    sqlite_uri: str
    remote_url: str | None = None
    remote_db: str | None = None

    def tracking_uri(self, variant: str) -> str:
        if variant == "remote":
            assert self.remote_url is not None
            return self.remote_url
        return self.sqlite_uri

    def database(self, variant: str) -> str:
        return self.remote_db if variant == "remote" and self.remote_db else self.sqlite_uri

    def trace_count(self, variant: str) -> int:
        """Traces in the store (read from its database, so it costs the servers nothing)."""
        if variant == "off":
            return 0
        engine = create_engine(self.database(variant))
        try:
            with engine.connect() as connection:
                return int(connection.execute(text("SELECT count(*) FROM trace_info")).scalar() or 0)
        except Exception:  # noqa: BLE001 - no trace table yet
            return 0
        finally:
            engine.dispose()


@dataclass
class Contender:
    name: str
    variant: str
    server: ServerProcess
    ready_s: float
    url: str
    pids: list[int] = field(default_factory=list)


def configure_backend(backend: ServerProcess, **behaviour: Any) -> None:
    body = {"ttft": 0.0, "latency": 0.0, "chunks": 4, **behaviour}
    httpx.post(f"{backend.url}/scripted/config", json=body, timeout=10).raise_for_status()


def log_model(env: dict[str, str], work: Path) -> tuple[str, float]:
    """Log and register the example agent; return its local model directory and the time taken."""
    os.environ.update(env)
    import mlflow

    from agentship.model_logging import DEFAULT_CONFIGS, load_config, log_agent

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("bench")
    config = load_config(DEFAULT_CONFIGS["openai-agents"])
    started = time.perf_counter()
    logged = log_agent("openai-agents", config, registered_model_name="bench-agent")
    took = time.perf_counter() - started
    path = mlflow.artifacts.download_artifacts(logged.model_uri, dst_path=str(work / "model"))
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    return path, took


def _command(
    name: str, model: str, port: int, workers: int, launcher: list[str] | None = None
) -> tuple[list[str], str]:
    py = sys.executable
    if name == "stock":
        return [py, "-m", "mlflow", "models", "serve", "-m", model, "-p", str(port), "-w", str(workers),
                "--env-manager", "local", "--host", "127.0.0.1"], "/ping"  # fmt: skip
    if name == "agent_server":
        return [py, "-m", "uvicorn", "bench.agent_server_app:app", "--port", str(port),
                "--workers", str(workers), "--log-level", "warning"], "/health"  # fmt: skip
    serving = launcher or [py, "-m", "serving"]
    return [*serving, "-m", model, "-p", str(port), "--workers", str(workers)], "/ready"


def start(
    name: str,
    variant: str,
    model: str,
    base_env: dict[str, str],
    stores: Stores,
    logs: Path,
    *,
    workers: int = 1,
    extra: dict[str, str] | None = None,
    launcher: list[str] | None = None,
) -> Contender:
    """Start a contender with its traces going to ``variant``'s store; time launch to ready."""
    port = free_port()
    command, health = _command(name, model, port, workers, launcher)
    env = {**base_env, "MLFLOW_TRACKING_URI": stores.tracking_uri(variant), "BENCH_MODEL_URI": model}
    env.update(extra or {})
    if variant == "off":
        env["MLFLOW_TRACE_SAMPLING_RATIO"] = "0"
    started = time.perf_counter()
    server = start_server(
        f"bench-{name}-{variant}-{port}", command, port=port, log_dir=logs, env=venv_env(env),
        cwd=REPO, health_path=health, timeout=240,
    )  # fmt: skip
    ready = time.perf_counter() - started
    return Contender(name, variant, server, ready, f"{server.url}/invocations", [server.process.pid])
