"""A real PostgreSQL for the state-store tests (one server per session, a fresh database per
test), and the SQLite default beside it: the same tests run against both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentship.testing.postgres import PostgresServer
from agentship.testing.processes import ServerProcess
from tests.e2e.helpers import run_log_agent
from tests.state.served import HERE, Cluster, serve
from tests.state.side_effects import VISITS_ENV


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.url(server.create_database())


@pytest.fixture(scope="session")
def model_uri() -> str:
    name = "served-state-agent"
    result = run_log_agent(
        "--agent", "openai-agents", "--config", str(HERE / "served_agent.yaml"), "--registered-model-name", name
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return f"models:/{name}/1"


@pytest.fixture(params=["postgresql", "sqlite-w2"])
def cluster(
    request: pytest.FixtureRequest, model_uri: str, scripted: ServerProcess, log_dir: Path, tmp_path: Path
) -> Iterator[Cluster]:
    visits = tmp_path / "visits.txt"
    if request.param == "postgresql":
        pg: PostgresServer = request.getfixturevalue("postgres")
        url, args, count = pg.url(pg.create_database()), (), 2
    else:
        url, args, count = f"sqlite:///{tmp_path / 'state.db'}", ("-w", "2"), 1
    started: list[ServerProcess] = []

    def start() -> ServerProcess:
        server = serve(
            model_uri, url, scripted, log_dir, f"state-{request.param}", *args, **{VISITS_ENV: str(visits)}
        )
        started.append(server)
        return server

    servers = [start() for _ in range(count)]
    yield Cluster(servers, url, visits, start)
    for server in started:
        server.stop()
