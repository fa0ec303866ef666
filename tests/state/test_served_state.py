"""State that survives faults exactly once, end to end (issue 20): real ``python -m serving``
processes in front of the scripted model, over one state store: a real PostgreSQL with two
replicas, or the SQLite default with two worker processes (``-w 2``) on one file.

* two identical approvals sent at once run the approved tool once;
* a turn cut short by SIGKILL leaves nothing: the client's retry is recorded once, and a
  background run taken over by another replica runs its input into the conversation once;
* a turn caught by a database outage fails cleanly and leaves nothing once the database is back;
* a burst of turns stays within the configured pools.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentship.testing.postgres import PostgresServer, start_postgres, stop_postgres
from agentship.testing.processes import ServerProcess
from tests.state.served import Cluster, in_background, kill, mark, model_users, serve, turn, wait_until
from tests.state.side_effects import VISITS_ENV

pytestmark = pytest.mark.e2e

VISIT = "The visit of Bob is recorded."


# -- item 5 ---------------------------------------------------------------------------------------
def test_identical_approvals_sent_at_once_run_the_tool_once(cluster: Cluster) -> None:
    m = mark()
    paused = httpx.post(
        f"{cluster.a.url}/responses",
        json={"model": "agent", "input": f"Please record visit for Bob {m}"},
        timeout=60,
    ).json()
    ask = paused["output"][0]
    assert (ask["type"], ask["name"]) == ("mcp_approval_request", "record_visit")
    answer = {"type": "mcp_approval_response", "approval_request_id": ask["id"], "approve": True}
    body = {"model": "agent", "previous_response_id": paused["id"], "input": [answer]}

    async def at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as http:
            servers = [cluster.a, cluster.b, cluster.a, cluster.b]
            return list(await asyncio.gather(*(http.post(f"{s.url}/responses", json=body) for s in servers)))

    replies = asyncio.run(at_once())
    assert sorted(r.status_code for r in replies) == [200, 400, 400, 400], [r.text for r in replies]
    resumed = next(r.json() for r in replies if r.status_code == 200)
    assert [(i["type"], i.get("output")) for i in resumed["output"]] == [
        ("mcp_call", VISIT),
        ("message", None),
    ]
    for refused in (r.json()["error"] for r in replies if r.status_code == 400):
        assert refused["type"] == "invalid_request_error"
        assert refused["message"].startswith(
            "the approval answers no paused run of this user: it was answered already"
        )
    assert cluster.visited() == ["Bob"]


# -- item 6 ---------------------------------------------------------------------------------------
def test_a_turn_cut_short_by_sigkill_is_taken_back_and_its_retry_recorded_once(
    cluster: Cluster, scripted: ServerProcess
) -> None:
    m = mark()
    assert turn(cluster.a, m, f"hello {m}").status_code == 200
    slow = f"long {m} [[latency=6]]"
    pending = in_background(lambda: turn(cluster.a, m, slow))
    wait_until(lambda: bool(model_users(scripted, f"long {m}")))  # its input is in the session now
    kill(cluster.a)
    assert isinstance(pending(), httpx.HTTPError)
    survivor = cluster.b if cluster.b is not cluster.a else cluster.start()
    retried = turn(survivor, m, slow)  # the client's retry, once the killed turn's lease ran out
    assert retried.status_code == 200, retried.text
    assert retried.json()["output"][-1]["content"][0]["text"] == f"You said: long {m}"
    assert model_users(scripted, f"long {m}")[-1] == [f"hello {m}", slow]


def _killed_and_taken_over(cluster: Cluster, response_id: str) -> dict[str, Any]:
    """SIGKILL the replica running a background response; its end, as another replica reads it
    once that replica has taken it over and finished it."""
    kill(cluster.a)
    survivor = cluster.b if cluster.b is not cluster.a else cluster.start()

    def finished() -> bool:
        status = httpx.get(f"{survivor.url}/responses/{response_id}", timeout=10).json()["status"]
        return status not in ("queued", "in_progress")

    wait_until(finished, deadline_s=120)
    answer: dict[str, Any] = httpx.get(f"{survivor.url}/responses/{response_id}", timeout=10).json()
    return answer


def test_a_background_run_taken_over_runs_its_input_into_the_conversation_once(
    cluster: Cluster, scripted: ServerProcess
) -> None:
    m = mark()
    job = f"long job {m} [[latency=4 chunks=8]]"
    body = {"model": "agent", "input": job, "background": True, "conversation": f"bg-{m}"}
    queued = httpx.post(f"{cluster.a.url}/responses", json=body, timeout=60).json()
    wait_until(lambda: bool(model_users(scripted, f"long job {m}")))
    done = _killed_and_taken_over(cluster, queued["id"])
    assert done["status"] == "completed", done
    attempts = model_users(scripted, f"long job {m}")
    assert len(attempts) == 2 and attempts[-1] == [job]  # the second attempt saw its input once


def test_a_background_run_continuing_a_chain_is_taken_over_with_its_whole_history(
    cluster: Cluster, scripted: ServerProcess
) -> None:
    """A chain's responses keep only their own items (issue 21): the replica that takes a killed
    background run over reads the run's whole history back up the chain, on another replica."""
    m = mark()

    def post(server: ServerProcess, body: dict[str, object]) -> dict[str, object]:
        answer = httpx.post(f"{server.url}/responses", json={"model": "agent", **body}, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()

    first = post(cluster.a, {"input": f"first {m}"})
    second = post(cluster.b, {"input": f"second {m}", "previous_response_id": first["id"]})
    job = f"chained job {m} [[latency=4 chunks=8]]"
    queued = post(cluster.a, {"input": job, "background": True, "previous_response_id": second["id"]})
    wait_until(lambda: bool(model_users(scripted, f"chained job {m}")))
    done = _killed_and_taken_over(cluster, queued["id"])
    assert done["status"] == "completed", done
    attempts = model_users(scripted, f"chained job {m}")
    assert attempts == [[f"first {m}", f"second {m}", job]] * 2


# -- item 4 ---------------------------------------------------------------------------------------
@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    stop_postgres(server)


def test_a_turn_caught_by_a_database_outage_fails_cleanly_and_leaves_nothing(
    own_postgres: PostgresServer, model_uri: str, scripted: ServerProcess, log_dir: Path, tmp_path: Path
) -> None:
    """The lease cannot be renewed while the database is down: the turn is stopped and answered
    503 before the lease runs out; the items it had written are taken back by the next turn."""
    url = own_postgres.url(own_postgres.create_database())
    server = serve(model_uri, url, scripted, log_dir, "state-outage", **{VISITS_ENV: str(tmp_path / "v")})
    try:
        m = mark()
        assert turn(server, m, f"hello {m}").status_code == 200
        pending = in_background(lambda: turn(server, m, f"long {m} [[latency=30]]"))
        wait_until(lambda: bool(model_users(scripted, f"long {m}")))
        own_postgres.stop("fast")
        failed = pending()
        assert isinstance(failed, httpx.Response), failed
        assert (failed.status_code, failed.json()["error"]["code"]) == (503, "state_unavailable")
        own_postgres.start()
        after: httpx.Response | None = None

        def answered() -> bool:
            nonlocal after
            after = turn(server, m, f"after {m}")
            return after.status_code == 200

        wait_until(answered)  # the replica reconnects by itself
        assert model_users(scripted, f"after {m}")[-1] == [f"hello {m}", f"after {m}"]
    finally:
        server.stop()


# -- item 18 --------------------------------------------------------------------------------------
def test_a_burst_of_turns_stays_within_the_configured_pools(
    postgres: PostgresServer, model_uri: str, scripted: ServerProcess, log_dir: Path, tmp_path: Path
) -> None:
    database = postgres.create_database()
    pool = {"AGENTSHIP_STATE_POOL_SIZE": "2", "AGENTSHIP_STATE_POOL_OVERFLOW": "1"}
    server = serve(
        model_uri,
        postgres.url(database),
        scripted,
        log_dir,
        "state-pool",
        **pool,
        **{VISITS_ENV: str(tmp_path / "v")},
    )
    try:
        m = mark()

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=120) as http:
                bodies = [
                    {
                        "input": [{"role": "user", "content": f"hi {m} {i}"}],
                        "context": {"conversation_id": f"{m}-{i}"},
                    }
                    for i in range(24)
                ]
                replies = await asyncio.gather(
                    *(http.post(f"{server.url}/invocations", json=b) for b in bodies)
                )
                return [r.status_code for r in replies]

        assert asyncio.run(burst()) == [200] * 24
        open_now = postgres.psql(
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'", database=database
        )
        # 1 process x 2 engines x a pool of 2 (overflow connections close when returned), + psql's own
        assert int(open_now.strip()) <= 1 * 2 * 2 + 1
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines()
        assert "agentship_state_trim_failures_total 0.0" in metrics  # every trim of the burst worked
    finally:
        server.stop()
