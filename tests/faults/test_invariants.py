"""The fault-injection campaign at its small scale (issue 20's invariants, on every CI run).

Two replicas on a real PostgreSQL and a two-worker server on SQLite, under concurrent
conversations, background runs and doubly-answered approvals, while a replica is SIGKILLed on
each store and PostgreSQL restarts; model calls fail and clients hang up. The larger campaign is
``python -m tests.faults --scale large`` (README, "Reliability"; docs/guides/reliability.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.campaign import SMALL, run

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(900)
def test_the_invariants_hold_under_faults(tmp_path: Path) -> None:
    report = run(tmp_path, SMALL)
    assert report.faults and len(report.faults) == SMALL.kills + SMALL.sqlite_kills + SMALL.pg_restarts, (
        report.faults
    )
    assert sum(t.outcome == "acknowledged" for t in report.record.turns) > 0
    assert report.record.background and report.record.approvals and report.record.probes
    assert report.ok(), "\n".join(report.lines())
