"""The fault-injection campaign: load and faults at random moments, then the invariants.

:func:`run` starts the topology (:mod:`.topology`), runs the clients (:mod:`.workload`) while a
fault task strikes at random moments (SIGKILL a PostgreSQL replica, SIGKILL the SQLite server,
restart PostgreSQL), waits for every background run to end, and checks the invariants
(:mod:`.invariants`). A seed makes a campaign repeatable. ``python -m tests.faults`` runs it
at any scale; the CI test runs it small.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.faults import invariants
from tests.faults.topology import Topology, topology
from tests.faults.workload import Clients, Record, approval, background_run, conversation, probe

TERMINAL = {"completed", "failed", "cancelled", "incomplete"}


@dataclass(frozen=True)
class Scale:
    pg_replicas: int = 2
    seconds: float = 40.0
    """How long clients keep starting work (what they started then runs to its end)."""
    clients: int = 12
    """Clients at once, each starting one piece of work after another: a conversation (of
    ``turns`` turns), a background run or an approval."""
    turns: int = 3
    kills: int = 1
    """SIGKILLs of a PostgreSQL replica."""
    sqlite_kills: int = 1
    pg_restarts: int = 1
    seed: int = 20261203


SMALL = Scale()
LARGE = Scale(pg_replicas=3, seconds=300.0, clients=48, turns=5, kills=4, sqlite_kills=2, pg_restarts=3)


@dataclass
class Report:
    scale: Scale
    seconds: float = 0.0
    faults: list[str] = field(default_factory=list)
    verdicts: list[invariants.Verdict] = field(default_factory=list)
    record: Record = field(default_factory=Record)
    rss: dict[str, list[float]] = field(default_factory=dict)

    def ok(self) -> bool:
        return all(not v.violations for v in self.verdicts)

    def lines(self) -> list[str]:
        turns = self.record.turns
        outcome = {o: sum(t.outcome == o for t in turns) for o in ("acknowledged", "failed", "ambiguous")}
        kinds = {k: sum(t.kind == k for t in turns) for k in ("ok", "slow", "fail", "hang-up")}
        out = [
            f"scale: {self.scale}",
            f"ran {self.seconds:.0f} s; faults: {', '.join(self.faults) or 'none'}",
            f"turns: {len(turns)} {outcome}, by kind {kinds}",
            f"background runs: {len(self.record.background)} ({sum(b.cancelled for b in self.record.background)} cancelled)",
            f"approvals: {len(self.record.approvals)} answered twice at once, {sum(a.approve for a in self.record.approvals)} approved",
        ]
        for name, values in sorted(self.rss.items()):
            out.append(f"rss {name}: {values[0]:.0f} MiB warm, {max(values):.0f} MiB peak")
        for verdict in self.verdicts:
            state = "ok" if not verdict.violations else f"{len(verdict.violations)} VIOLATIONS"
            out.append(f"[{state}] {verdict.name}: {verdict.checked} checked")
            out += [f"    {v}" for v in verdict.violations[:20]]
        return out


def _rss_mib(pid: int) -> float:
    """The resident memory of a process and its descendants, in MiB."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += (
                next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024
            )
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total


async def _sample(top: Topology, samples: dict[str, list[float]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for name, pid in top.pids().items():
            samples.setdefault(name, []).append(_rss_mib(pid))
        try:
            await asyncio.wait_for(stop.wait(), timeout=2)
        except TimeoutError:
            pass


async def _faults(top: Topology, scale: Scale, rng: random.Random, log: list[str], t0: float) -> None:
    """Each fault strikes at a random moment of the load's first 70%: all of them land under load.
    A killed server's replacement starts meanwhile, as an orchestrator would restart it."""
    plan = ["kill"] * scale.kills + ["sqlite-kill"] * scale.sqlite_kills + ["pg-restart"] * scale.pg_restarts
    rng.shuffle(plan)
    restarts: list[asyncio.Task[object]] = []
    for fault, at in zip(plan, sorted(rng.uniform(0.1, 0.7) * scale.seconds for _ in plan), strict=True):
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
        started = time.monotonic()
        if fault == "pg-restart":
            await asyncio.to_thread(top.restart_postgres, rng.uniform(1, 3))
        else:
            cluster = top.clusters["pg" if fault == "kill" else "sqlite"]
            live = [s for s in cluster.servers if s.alive()]
            if not live:  # its only server was just killed and is not back yet
                continue
            await asyncio.to_thread(top.kill, cluster, rng.choice(live))
            restarts.append(asyncio.create_task(asyncio.to_thread(top.start, cluster)))
        log.append(f"{fault} at {started - t0:.0f}s")
    await asyncio.gather(*restarts)


async def _client(
    clients: Clients, record: Record, cluster: str, user: str, turns: int, until: float
) -> None:
    """One client: a piece of work after another, until the load's time is up."""
    while time.monotonic() < until:
        choice = clients.rng.random()
        if choice < 0.6:
            await conversation(clients, record, cluster, user, turns)
        elif choice < 0.8:
            await background_run(clients, record, cluster, user)
        else:
            await approval(clients, record, cluster, user)


async def _load(top: Topology, scale: Scale, rng: random.Random, record: Record, t0: float) -> None:
    limits = httpx.Limits(max_connections=scale.clients * 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(120, connect=5), limits=limits) as http:
        work = []
        for i in range(scale.clients):
            name = ("pg", "sqlite")[i % 2]
            clients = Clients(http, top.clusters[name].urls, random.Random(rng.random()))
            work.append(_client(clients, record, name, f"user-{i % 7}", scale.turns, t0 + scale.seconds))
        await asyncio.gather(*work)
        for name, cluster in top.clusters.items():
            clients = Clients(http, cluster.urls, random.Random(rng.random()))
            await asyncio.gather(*(probe(clients, record, name, f"user-{i}") for i in range(7)))
        await _until_ended(http, top, record)


async def _until_ended(
    http: httpx.AsyncClient, top: Topology, record: Record, deadline_s: float = 240
) -> None:
    """Wait for every background run to end (another replica takes over a killed one's)."""
    deadline = time.monotonic() + deadline_s
    for run in record.background:
        while time.monotonic() < deadline:
            live = top.clusters[run.cluster].urls()
            if not live:
                await asyncio.sleep(0.5)
                continue
            url = random.choice(live)
            try:
                reply = await http.get(f"{url}/responses/{run.response_id}", headers={"x-user-id": run.user})
                if reply.status_code == 200 and reply.json()["status"] in TERMINAL:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(1)


async def _campaign(top: Topology, scale: Scale, report: Report) -> dict[str, list[float]]:
    rng = random.Random(scale.seed)
    samples: dict[str, list[float]] = {}
    done, t0 = asyncio.Event(), time.monotonic()
    sampler = asyncio.create_task(_sample(top, samples, done))
    faults = asyncio.create_task(_faults(top, scale, rng, report.faults, t0))
    try:
        await _load(top, scale, rng, report.record, t0)
        await faults
    finally:
        faults.cancel()
        done.set()
        await sampler
    return samples


def run(log_dir: Path, scale: Scale = SMALL, out: Callable[[str], None] = print) -> Report:
    report = Report(scale)
    with topology(log_dir, scale.pg_replicas) as top:
        out(
            f"topology up: {sum(len(c.servers) for c in top.clusters.values())} servers; load and faults start"
        )
        started = time.monotonic()
        samples = report.rss = asyncio.run(_campaign(top, scale, report))
        report.seconds = time.monotonic() - started
        urls = {name: cluster.state_url for name, cluster in top.clusters.items()}
        visits = top.visits.read_text().splitlines() if top.visits.exists() else []
        report.verdicts = [
            invariants.turns(report.record, urls),
            invariants.background(report.record, urls),
            invariants.side_effects(report.record, visits),
            invariants.isolation(report.record),
            invariants.memory(samples),
        ]
    for line in report.lines():
        out(line)
    return report
