"""MCP servers written for the tests, and how to start them as processes on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env

REPO = Path(__file__).resolve().parents[3]


def start_docs_server(
    log_dir: Path, token: str | None, name: str = "docs-mcp", port: int | None = None
) -> ServerProcess:
    """The docs server (``docs_server.py``, streamable HTTP at ``/mcp``); with ``token``, it
    answers only requests that carry it as a bearer token, without one it is open. ``port``: one
    chosen beforehand (a client configured before the server starts), else a free one."""
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.serving.mcp_servers.docs_server:app",
        "--port",
        str(port),
    ]
    env = venv_env({"DOCS_MCP_TOKEN": token} if token else {})
    if token is None:
        env.pop("DOCS_MCP_TOKEN", None)
    return start_server(f"{name}-{port}", command, port=port, log_dir=log_dir, env=env, cwd=REPO)
