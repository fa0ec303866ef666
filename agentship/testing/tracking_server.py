"""A remote MLflow tracking server as production runs it, on loopback: ``mlflow server`` with a
PostgreSQL backend store and proxied artifacts (``--serve-artifacts``), so that clients share
nothing with it but its URL: runs, models, the registry and traces go over HTTP, and artifacts
through ``mlflow-artifacts:`` URIs.

The server's venv needs PostgreSQL drivers: ``psycopg2-binary`` and ``psycopg[binary]`` (the
project's ``dev`` extra has both).
"""

from __future__ import annotations

import sys
from pathlib import Path

from agentship.testing.postgres import PostgresServer
from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env


def start_tracking_server(
    postgres: PostgresServer,
    root: Path,
    log_dir: Path,
    *,
    port: int | None = None,
    database: str | None = None,
) -> ServerProcess:
    """``mlflow server`` on a fresh database of ``postgres``, its artifacts under ``root``."""
    port = port or free_port()
    database = postgres.create_database(database)
    store = postgres.url(database, driver="postgresql")
    artifacts = root / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", store,
        "--serve-artifacts", "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = venv_env({"MLFLOW_TRACKING_URI": store})
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    # A fresh store runs MLflow's migrations first: up to a minute on a busy machine.
    return start_server(
        f"mlflow-server-{port}", command, port=port, log_dir=log_dir, env=env, cwd=root, timeout=300
    )
