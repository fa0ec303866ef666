"""A process tree's resident memory and CPU time, from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        todo += _children(current)
    return seen


def tree_rss_mib(pid: int) -> float:
    total_kib = 0
    for current in _tree(pid):
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (all their threads), those that
    ended too: a process's ``cutime``/``cstime`` hold its reaped children's (PostgreSQL's
    backends come and go with the clients' connections; without it a tree's CPU could fall)."""
    total = 0
    for current in _tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime (clock ticks)
    return total / _TICKS


def cpu_s(pids: list[int]) -> float:
    return sum(tree_cpu_s(pid) for pid in pids)


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


async def machine_quiet(threshold: float = 0.15, window_s: float = 0.5, timeout_s: float = 30.0) -> float:
    """Wait until the machine's busy share over ``window_s`` is under ``threshold`` (the previous
    contender's tracking server and database finishing their writes, say); the last share."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        busy, total = _busy_jiffies()
        await asyncio.sleep(window_s)
        busy2, total2 = _busy_jiffies()
        share = (busy2 - busy) / max(1, total2 - total)
        if share < threshold or time.monotonic() > deadline:
            return share
