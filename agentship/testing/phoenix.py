"""Arize Phoenix, a real OpenTelemetry trace backend, on loopback: OTLP over HTTP at ``/v1/traces``.

It runs from its own venv in the cache (``scripts/phoenix_env.sh`` installs it and prints the
directory; ``$AGENTSHIP_PHOENIX_DIR`` names it). :func:`spans` reads back what arrived through
Phoenix's REST API.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx

from agentship.testing.processes import ServerProcess, free_port, start_server

PHOENIX_DIR_ENV = "AGENTSHIP_PHOENIX_DIR"
_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "phoenix_env.sh"


def find_phoenix() -> Path | None:
    """The Phoenix venv (``$AGENTSHIP_PHOENIX_DIR``, else an installed one), or None."""
    if explicit := os.environ.get(PHOENIX_DIR_ENV):
        return Path(explicit)
    found = subprocess.run(["bash", str(_SCRIPT), "--check"], capture_output=True, text=True, check=False)
    return Path(found.stdout.strip()) if found.returncode == 0 else None


def start_phoenix(venv: Path, root: Path, log_dir: Path) -> ServerProcess:
    """``phoenix serve`` bound to 127.0.0.1 (HTTP and gRPC on free ports), its data under ``root``."""
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(root),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(free_port()),
        "PHOENIX_WORKING_DIR": str(root / "phoenix"),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    command = [str(venv / "bin" / "phoenix"), "serve"]
    return start_server(
        f"phoenix-{port}",
        command,
        port=port,
        log_dir=log_dir,
        env=env,
        cwd=root,
        health_path="/",
        timeout=180,
    )


def spans(phoenix: ServerProcess, project: str = "default", page: int = 1000) -> list[dict[str, Any]]:
    """Every span Phoenix holds for ``project``, following its cursor."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": page, **({"cursor": cursor} if cursor else {})}
        reply = httpx.get(f"{phoenix.url}/v1/projects/{project}/spans", params=params, timeout=30)
        if reply.status_code == 404:  # the project does not exist until its first span arrives
            return []
        reply.raise_for_status()
        body = reply.json()
        found += body["data"]
        cursor = body.get("next_cursor")
        if not cursor:
            return found
