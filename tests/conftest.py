"""Shared fixtures. No test may reach a real model: the OpenAI variables are cleared for the
whole session, and every end-to-end test talks to the scripted model server on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from agentship.testing.postgres import PostgresServer, start_postgres, stop_postgres
from agentship.testing.processes import ServerProcess, start_scripted_llm

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Clear real endpoints and keys; give the session its own MLflow store."""
    saved = dict(os.environ)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "MLFLOW_EXPERIMENT_NAME"):
        os.environ.pop(name, None)
    store = tmp_path_factory.mktemp("mlflow")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    yield store
    uri = os.environ["MLFLOW_TRACKING_URI"]
    os.environ.clear()
    os.environ.update(saved)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # traces MLflow flushes at exit go here, not to ./mlruns


@pytest.fixture(autouse=True)
def _no_leaked_experiment() -> Iterator[None]:
    """MLflow exports MLFLOW_EXPERIMENT_ID when an experiment is made active; child processes
    (log_agent.py, mlflow models serve) would inherit it and ignore their own settings."""
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    yield
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def scripted(log_dir: Path) -> Iterator[ServerProcess]:
    """The scripted OpenAI-compatible model server, as a real process on loopback."""
    server = start_scripted_llm(log_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on loopback for the whole session; tests make their own databases."""
    server = start_postgres()
    yield server
    stop_postgres(server)
