"""Real ``python -m serving`` replicas over one state store, in front of the scripted model, for
the served-state tests (the fixtures that start them are in ``conftest.py``)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env

HERE = Path(__file__).resolve().parent
LEASE_S = "6"  # a killed replica's conversations wait this long, not the default 15 s
VISIT = "The visit of Bob is recorded."


@dataclass
class Cluster:
    """Servers over one store; ``start()`` starts another (a replacement after a kill)."""

    servers: list[ServerProcess]
    state_url: str
    visits: Path
    start: Callable[[], ServerProcess]

    @property
    def a(self) -> ServerProcess:
        return self.servers[0]

    @property
    def b(self) -> ServerProcess:
        return self.servers[-1]

    def visited(self) -> list[str]:
        return self.visits.read_text().splitlines() if self.visits.exists() else []


def serve(
    model_uri: str, state_url: str, scripted: ServerProcess, log_dir: Path, name: str, *args: str, **env: str
) -> ServerProcess:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "serving",
        "-m",
        model_uri,
        "-p",
        str(port),
        "--state-url",
        state_url,
        *args,
    ]
    environ = venv_env(
        {
            "OPENAI_BASE_URL": scripted.url + "/v1",
            "AGENTSHIP_STATE_LEASE_S": LEASE_S,
            "MLFLOW_EXPERIMENT_NAME": "served-state",
            **env,
        }
    )
    return start_server(
        f"{name}-{port}", command, port=port, log_dir=log_dir, env=environ, health_path="/ready", timeout=120
    )


def mark() -> str:
    return uuid.uuid4().hex[:10]


def model_users(scripted: ServerProcess, needle: str) -> list[list[str]]:
    """The user messages of every model request whose latest user message contains ``needle``."""
    seen = []
    for entry in httpx.get(f"{scripted.url}/scripted/requests", timeout=10).json():
        users = [m["text"] for m in entry["messages"] if m["role"] == "user"]
        if users and needle in users[-1]:
            seen.append(users)
    return seen


def wait_until(condition: Callable[[], bool], deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold within the deadline"
        time.sleep(0.1)


def turn(server: ServerProcess, conversation: str, text: str) -> httpx.Response:
    body = {"input": [{"role": "user", "content": text}], "context": {"conversation_id": conversation}}
    return httpx.post(f"{server.url}/invocations", json=body, timeout=120)


def in_background(call: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``call`` on a thread; the returned function joins it and returns its result (or error)."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join() -> Any:
        thread.join(timeout=180)
        assert outcome, "the request did not end"
        return outcome[0]

    return join


def kill(server: ServerProcess) -> None:
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
