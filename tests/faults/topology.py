"""What the fault-injection campaign runs against, all real processes on loopback: a PostgreSQL
server of its own (so it can be restarted), replicas of ``python -m serving`` on it, one more
server with two workers (``-w 2``) on the embedded SQLite store, and the scripted model."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agentship.testing.postgres import PostgresServer, start_postgres, stop_postgres
from agentship.testing.processes import ServerProcess, free_port, start_scripted_llm, start_server, venv_env
from tests.e2e.helpers import REPO, run_log_agent
from tests.state.side_effects import VISITS_ENV

HERE = Path(__file__).resolve().parent
LEASE_S = "6"
"""Conversation leases: a killed replica's conversations wait this long for their next turn."""


@dataclass
class Cluster:
    """Servers over one store."""

    name: str
    state_url: str
    args: tuple[str, ...]
    servers: list[ServerProcess] = field(default_factory=list)

    def urls(self) -> list[str]:
        return [s.url for s in self.servers if s.alive()]


@dataclass
class Topology:
    postgres: PostgresServer
    scripted: ServerProcess
    model_uri: str
    log_dir: Path
    visits: Path
    clusters: dict[str, Cluster] = field(default_factory=dict)
    stopped: list[ServerProcess] = field(default_factory=list)

    def start(self, cluster: Cluster) -> ServerProcess:
        port = free_port()
        command = [sys.executable, "-m", "serving", "-m", self.model_uri, "-p", str(port),
                   "--state-url", cluster.state_url, *cluster.args]  # fmt: skip
        env = venv_env(
            {
                "OPENAI_BASE_URL": self.scripted.url + "/v1",
                "AGENTSHIP_STATE_LEASE_S": LEASE_S,
                "MLFLOW_EXPERIMENT_NAME": "fault-campaign",
                VISITS_ENV: str(self.visits),
            }
        )
        server = start_server(
            f"{cluster.name}-{port}", command, port=port, log_dir=self.log_dir, env=env,
            cwd=REPO, health_path="/ready", timeout=180,
        )  # fmt: skip
        cluster.servers.append(server)
        return server

    def kill(self, cluster: Cluster, server: ServerProcess) -> None:
        """SIGKILL a server (its whole process group: every worker)."""
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        cluster.servers.remove(server)
        self.stopped.append(server)

    def restart_postgres(self, down_s: float) -> None:
        self.postgres.stop("fast")
        time.sleep(down_s)  # the outage the replicas ride out
        self.postgres.start()

    def pids(self) -> dict[str, int]:
        return {s.name: s.process.pid for c in self.clusters.values() for s in c.servers if s.alive()}


def register_model() -> str:
    name = f"fault-campaign-{time.time_ns()}"
    logged = run_log_agent(
        "--agent", "openai-agents", "--config", str(HERE / "agent.yaml"), "--registered-model-name", name
    )  # fmt: skip
    assert logged.returncode == 0, logged.stderr
    return f"models:/{name}/1"


@contextmanager
def topology(log_dir: Path, pg_replicas: int) -> Iterator[Topology]:
    postgres = start_postgres()
    scripted = start_scripted_llm(log_dir)
    top = Topology(postgres, scripted, register_model(), log_dir, log_dir / "visits.txt")
    try:
        top.clusters["pg"] = Cluster("pg", postgres.url(postgres.create_database()), ())
        top.clusters["sqlite"] = Cluster("sqlite", f"sqlite:///{log_dir / 'state.db'}", ("-w", "2"))
        for _ in range(pg_replicas):
            top.start(top.clusters["pg"])
        top.start(top.clusters["sqlite"])
        yield top
    finally:
        for cluster in top.clusters.values():
            for server in cluster.servers:
                server.stop()
        scripted.stop()
        stop_postgres(postgres)
