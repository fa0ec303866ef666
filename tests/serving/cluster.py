"""Replicas of ``python -m serving`` over one state store, for the tests that need state: a real
PostgreSQL (two replicas) or the SQLite default (one replica), with the same behaviour asked of
both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from agentship.testing.postgres import PostgresServer
from agentship.testing.processes import ServerProcess
from tests.serving.clients import Target


@dataclass
class Cluster:
    """Replicas over one store, and how to start another one."""

    replicas: list[ServerProcess]
    state_url: str
    scripted: ServerProcess
    start: Callable[[], ServerProcess]

    @property
    def a(self) -> ServerProcess:
        return self.replicas[0]

    @property
    def b(self) -> ServerProcess:
        return self.replicas[-1]

    def target(self) -> Target:
        return Target("state", self.a, self.scripted, reasoning=False)


def start_cluster(
    request: pytest.FixtureRequest,
    start_serving: Callable[..., ServerProcess],
    scripted: ServerProcess,
    directory: Path,
) -> Cluster:
    """``request.param`` is ``sqlite`` (one replica) or ``postgresql`` (two, on a new database)."""
    if request.param == "sqlite":
        url = f"sqlite:///{directory / 'state.db'}"
        count = 1
    else:
        pg: PostgresServer = request.getfixturevalue("postgres")
        url = pg.url(pg.create_database(), password="pg-SECRET-4242")
        count = 2

    def start() -> ServerProcess:
        return start_serving(scripted.url + "/v1", "--state-url", url, name=f"serving-{request.param}")

    return Cluster([start() for _ in range(count)], url, scripted, start)


def client(server: ServerProcess, user: str | None = None) -> openai.OpenAI:
    headers = {"x-user-id": user} if user else None
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, default_headers=headers)
