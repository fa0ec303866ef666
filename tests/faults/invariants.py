"""The campaign's invariants, read from what the stores, the tool and the replicas hold afterwards.

1. Every acknowledged turn is in its conversation exactly once; no failed turn is in it; a turn
   whose outcome the client cannot know is in it at most once; no turn is in another
   conversation.
2. Every background run reached exactly one terminal state, and its event log has no gap: its
   events are numbered 0…n-1, start with ``response.created``, and end with the one terminal
   event, whose status is the run's.
3. The side-effect tool ran exactly once per acknowledged approval, never for a rejection, at
   most once for an approval whose answer was lost; no approval answered twice ran twice.
4. No user read or continued another user's response.
5. Each replica's memory stayed within the bound: its peak RSS at most :data:`RSS_GROWTH_MIB`
   over its RSS after warm-up.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from agentship.state.records import TERMINAL, conversation_key
from tests.faults.workload import Record

RSS_GROWTH_MIB = 300.0
TERMINAL_EVENTS = ("response.completed", "response.failed", "response.incomplete")


@dataclass
class Verdict:
    name: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.violations.append(message)


@contextmanager
def _rows(state_url: str) -> Iterator[Any]:
    """A DB-API connection to a cluster's store."""
    if state_url.startswith("sqlite"):
        with closing(sqlite3.connect(state_url.split("///", 1)[1])) as conn:
            yield conn
        return
    plain = "postgresql://" + state_url.split("://", 1)[1]
    with psycopg.connect(plain) as conn:
        yield conn


def _text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text", "")) for p in content or [] if isinstance(p, dict))


def turns(record: Record, urls: dict[str, str]) -> Verdict:
    verdict = Verdict("turns: acknowledged once, failed never, unknown at most once, nowhere else")
    seen: Counter[tuple[str, str]] = Counter()  # (session, marker)
    markers = {t.marker for t in record.turns}
    for url in urls.values():
        with _rows(url) as conn:
            for session, data in conn.execute("SELECT session_id, message_data FROM agent_messages"):
                item = json.loads(data)
                if item.get("role") == "user":
                    for marker in markers & set(_text(item).split()):
                        seen[(session, marker)] += 1
    for turn in record.turns:
        verdict.checked += 1
        own = conversation_key(turn.user, turn.conversation)
        count = seen.pop((own, turn.marker), 0)
        allowed = {"acknowledged": {1}, "failed": {0}, "ambiguous": {0, 1}}[turn.outcome]
        if count not in allowed:
            verdict.fail(
                f"{turn.kind} turn {turn.marker} ({turn.outcome}) is in its conversation {count} times"
            )
    for (session, marker), count in seen.items():
        verdict.fail(f"turn {marker} is in another conversation ({session}) {count} times")
    return verdict


def background(record: Record, urls: dict[str, str]) -> Verdict:
    verdict = Verdict("background runs: one terminal state, a gap-free event log")
    for run in record.background:
        verdict.checked += 1
        with _rows(urls[run.cluster]) as conn:
            (status,) = conn.execute(
                _sql(urls[run.cluster], "SELECT status FROM agentship_responses WHERE id = ?"),
                (run.response_id,),
            ).fetchone()
            events = [
                (seq, json.loads(e) if isinstance(e, str) else e)
                for seq, e in conn.execute(
                    _sql(
                        urls[run.cluster],
                        "SELECT seq, event FROM agentship_response_events WHERE response_id = ? ORDER BY seq",
                    ),
                    (run.response_id,),
                )
            ]
        where = f"run {run.response_id}"
        if status not in TERMINAL:
            verdict.fail(f"{where} ended {status!r}")
        if [seq for seq, _ in events] != list(range(len(events))):
            verdict.fail(f"{where}: its events are numbered {[seq for seq, _ in events]}")
        ends = [e for _, e in events if e["type"] in TERMINAL_EVENTS]
        if not events or events[0][1]["type"] != "response.created":
            verdict.fail(f"{where}: its log does not start with response.created")
        if len(ends) != 1 or events[-1][1]["type"] not in TERMINAL_EVENTS:
            verdict.fail(
                f"{where}: {len(ends)} terminal events, the last event is {events[-1][1]['type'] if events else None}"
            )
        elif ends[0]["response"]["status"] != status:
            verdict.fail(
                f"{where}: the terminal event says {ends[0]['response']['status']}, the row {status}"
            )
    return verdict


def _sql(url: str, query: str) -> str:
    return query if url.startswith("sqlite") else query.replace("?", "%s")


def side_effects(record: Record, visits: list[str]) -> Verdict:
    verdict = Verdict("the side-effect tool: once per acknowledged approval, never for a rejection")
    ran = Counter(visits)
    for item in record.approvals:
        verdict.checked += 1
        count = ran.pop(item.visitor, 0)
        if not item.approve:
            allowed = {0}
        else:
            allowed = {"acknowledged": {1}, "failed": {0, 1}, "ambiguous": {0, 1}}[item.outcome]
        if count not in allowed:
            verdict.fail(
                f"visit {item.visitor} ran {count} times (approve={item.approve}, {item.outcome}, answers {item.statuses})"
            )
        if item.statuses.count(200) > 1:
            verdict.fail(f"approval of {item.visitor} was accepted twice: {item.statuses}")
    for visitor, count in ran.items():
        verdict.fail(f"visit {visitor} ran {count} times, for no approval")
    return verdict


def isolation(record: Record) -> Verdict:
    verdict = Verdict("no user read or continued another user's response")
    verdict.checked = record.probes
    verdict.violations = list(record.leaks)
    return verdict


def memory(samples: dict[str, list[float]]) -> Verdict:
    verdict = Verdict(f"each replica's peak RSS within {RSS_GROWTH_MIB:g} MiB of its warm RSS")
    for name, values in samples.items():
        verdict.checked += 1
        if values and max(values) - values[0] > RSS_GROWTH_MIB:
            verdict.fail(f"{name}: {values[0]:.0f} MiB warm, {max(values):.0f} MiB at its peak")
    return verdict
