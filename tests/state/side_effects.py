"""A tool with a side effect the tests can count across processes: one line per call, appended to
the file named by ``AGENTSHIP_TEST_VISITS`` (read when the tool runs, in the serving process)."""

from __future__ import annotations

import os

VISITS_ENV = "AGENTSHIP_TEST_VISITS"


def record_visit(visitor: str) -> str:
    """Record a visit (the example's side effect: it must happen once per approved call).

    Args:
        visitor: Who visits, for example "Bob".
    """
    with open(os.environ[VISITS_ENV], "a", encoding="utf-8") as visits:
        visits.write(f"{visitor}\n")
    return f"The visit of {visitor} is recorded."
