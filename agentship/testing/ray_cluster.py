"""A real local Ray cluster on loopback, a head and a worker node, for the Ray Serve tests.

Ray comes from its own venv in the cache (``scripts/ray_env.sh``; ``$AGENTSHIP_RAY_DIR`` names
it), with this checkout on ``PYTHONPATH`` so that the cluster's workers run this code. Each node
is a ``ray start --block`` in its own session; stopping the cluster ends those sessions, by
process id, and nothing else (``ray stop`` would end every Ray process of the machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from agentship.testing.processes import free_port

RAY_DIR_ENV = "AGENTSHIP_RAY_DIR"
NODE_IP = "127.0.0.2"
"""Both nodes' address: loopback, but not ``127.0.0.1``, which Ray replaces by the machine's
outward address (its interface's, which no test may send to)."""
_REPO = Path(__file__).resolve().parents[2]


def find_ray() -> Path | None:
    """The Ray venv (``$AGENTSHIP_RAY_DIR``, else an installed one), or None."""
    if explicit := os.environ.get(RAY_DIR_ENV):
        return Path(explicit)
    script = _REPO / "scripts" / "ray_env.sh"
    found = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True, check=False)
    return Path(found.stdout.strip()) if found.returncode == 0 else None


def _session_members(sid: int) -> list[int]:
    """The pids whose session is ``sid`` (a node's processes: raylet, GCS, workers, …)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":  # after the name: state, ppid, pgrp, session
            members.append(int(entry.name))
    return members


@dataclass
class RayCluster:
    venv: Path
    root: Path
    env: dict[str, str]
    port: int
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{NODE_IP}:{self.port}"

    def python(self, code: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run ``code`` as a Ray driver connected to the cluster."""
        return subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            env={**self.env, "RAY_ADDRESS": self.address},
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / args[0]), *args[1:]],
            env={**self.env, "RAY_ADDRESS": self.address},
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.root.glob("node-*.log")))

    def _start_node(self, *args: str) -> None:
        log = open(
            self.root / f"node-{len(self.nodes)}.log", "wb"
        )  # the node writes it; closed with the process
        self.nodes.append(
            subprocess.Popen(
                [str(self.venv / "bin" / "ray"), "start", "--block", "--node-ip-address", NODE_IP,
                 "--num-cpus", "2", "--disable-usage-stats", *args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.root, start_new_session=True,
            )
        )  # fmt: skip

    def _wait_for_nodes(self, count: int, timeout: float) -> None:
        code = (
            f"import ray; ray.init(_node_ip_address={NODE_IP!r}); print(sum(n['Alive'] for n in ray.nodes()))"
        )
        deadline = time.monotonic() + timeout
        while True:
            if any(node.poll() is not None for node in self.nodes):
                raise RuntimeError(f"a Ray node exited:\n{self.log_text()}")
            done = self.python(code, timeout=60)
            if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} Ray nodes were not up in {timeout:g}s:\n{done.stderr[-2000:]}")
            time.sleep(1)

    def stop(self, grace_s: float = 5.0) -> list[int]:
        """End every process of both nodes' sessions (SIGTERM, then after ``grace_s`` SIGKILL, as
        ``ray stop`` does); the pids still alive after it (none)."""
        for node in self.nodes:
            try:
                os.killpg(node.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_session_members(n.pid) for n in self.nodes):
            time.sleep(0.5)
        for node in self.nodes:  # whatever is still there (and whatever left the process group)
            for pid in _session_members(node.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            node.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_session_members(n.pid) for n in self.nodes):
            time.sleep(0.2)
        left = [pid for node in self.nodes for pid in _session_members(node.pid)]
        if not left:
            shutil.rmtree(self.root, ignore_errors=True)
        return left


def _free_port_below(limit: int) -> int:
    """A free port outside Ray's worker port range (10002-19999) and the ephemeral range."""
    for port in range(6400, limit):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for Ray's head")


def start_ray_cluster(venv: Path, env: dict[str, str], timeout: float = 180) -> RayCluster:
    """A head and one worker node on loopback, 2 CPUs each; ``env`` is every node's environment."""
    root = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must stay short
    node_env = {
        **env,
        "PATH": f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        "PYTHONPATH": str(_REPO),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    cluster = RayCluster(venv, root, node_env, _free_port_below(9000))
    try:
        cluster._start_node(
            "--head", "--port", str(cluster.port), "--include-dashboard", "false", "--temp-dir", str(root / "ray"),
            "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
        )  # fmt: skip
        cluster._wait_for_nodes(1, timeout)
        cluster._start_node("--address", cluster.address, "--dashboard-agent-listen-port", str(free_port()))
        cluster._wait_for_nodes(2, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster
