"""Start and stop local server processes on loopback: used by the tests, demo and benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment with this interpreter's bin dir first on PATH.

    ``mlflow models serve`` execs ``uvicorn`` by name, so it must be on PATH.
    """
    env = {**os.environ, **(extra or {})}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


@dataclass
class ServerProcess:
    """A child process serving HTTP on ``url``, with its output captured to ``log_path``."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_file: object = field(repr=False, default=None)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]


def start_server(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    log_dir: Path,
    health_path: str = "/health",
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 90.0,
) -> ServerProcess:
    """Start ``command`` in its own process group and wait until ``health_path`` answers 200."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log_file = open(log_path, "wb")
    process = subprocess.Popen(
        list(command),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
    server = ServerProcess(name, f"http://127.0.0.1:{port}", process, log_path, log_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_text()[-4000:]}")
        try:
            if httpx.get(server.url + health_path, timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"{name} was not healthy within {timeout:g}s:\n{server.log_text()[-4000:]}")


def start_scripted_llm(log_dir: Path, *args: str, port: int | None = None) -> ServerProcess:
    port = port or free_port()
    command = [sys.executable, "-m", "agentship.testing.scripted_llm", "--port", str(port), *args]
    return start_server(f"scripted-llm-{port}", command, port=port, log_dir=log_dir, timeout=30)


def start_mlflow_serve(
    model_uri: str,
    log_dir: Path,
    env: Mapping[str, str],
    *,
    port: int | None = None,
    name: str = "mlflow-serve",
) -> ServerProcess:
    port = port or free_port()
    command = [
        sys.executable, "-m", "mlflow", "models", "serve",
        "-m", model_uri, "-p", str(port), "--host", "127.0.0.1", "--env-manager", "local",
    ]  # fmt: skip
    return start_server(name, command, port=port, log_dir=log_dir, env=venv_env(env), timeout=120)
