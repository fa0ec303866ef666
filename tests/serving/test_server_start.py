"""The server's start, in process: a start that fails closes everything it had opened.

Before the model loads, the server has started its trace export; nothing that claims work (the
state store's sweeper, retention) runs until the model is loaded. A model that does not load
leaves no thread, task or connection behind: the process can report the failure and exit, or an
embedding host (a Ray replica, a test) can go on.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from agentship.server import AgentServer, ServerSettings

pytestmark = pytest.mark.e2e


async def _start(app: AgentServer) -> list[dict[str, Any]]:
    """Run the app's lifespan startup; the messages it sent."""
    sent: list[dict[str, Any]] = []
    received = asyncio.Queue[dict[str, Any]]()
    received.put_nowait({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, received.get, send)
    )
    while not any(m["type"].startswith("lifespan.startup.") for m in sent):
        await asyncio.sleep(0.05)
    lifespan.cancel()
    return sent


def test_a_start_that_fails_closes_what_it_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTSHIP_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    before = {t.name for t in threading.enumerate()}

    async def scenario() -> tuple[list[dict[str, Any]], list[str]]:
        app = AgentServer(ServerSettings(model_uri=str(tmp_path / "no-such-model")))
        sent = await _start(app)
        await asyncio.sleep(0)
        return sent, sorted(t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task())

    sent, tasks = asyncio.run(scenario())
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert not [t for t in tasks if t.startswith(("server-", "agentship-"))], tasks
    left = {t.name for t in threading.enumerate()} - before
    assert "agentship-trace-export" not in left, left
    assert not (tmp_path / "state.db").exists()  # nothing was opened on the store before the model loaded
