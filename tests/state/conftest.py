"""A real PostgreSQL for the state-store tests (one server per session, a fresh database per
test), and the SQLite default beside it: the same tests run against both."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentship.testing.postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.url(server.create_database())
