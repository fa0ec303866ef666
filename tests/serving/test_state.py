"""Conversations and stored responses that survive restarts and replicas.

Real ``python -m serving`` replicas in front of the scripted model, sharing one state store: a
real PostgreSQL (two replicas) or the SQLite default (one replica), with the same behaviour
asked of both. A replica is killed with SIGKILL where the issue says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from agentship.testing.postgres import PostgresServer, start_postgres, stop_postgres
from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env
from tests.e2e.helpers import wait_for_traces
from tests.serving.clients import MODEL, PARIS, TOOL_ANSWER, Target, marker
from tests.serving.cluster import Cluster, client, start_cluster
from tests.serving.conftest import TRACE_EXPERIMENT

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["sqlite", "postgresql"])
def cluster(
    request: pytest.FixtureRequest,
    start_serving: Callable[..., ServerProcess],
    scripted: ServerProcess,
    tmp_path: Path,
) -> Iterator[Cluster]:
    started = start_cluster(request, start_serving, scripted, tmp_path)
    yield started
    for replica in started.replicas:
        replica.stop()


def test_previous_response_id_continues_on_another_replica(cluster: Cluster) -> None:
    mark = marker()
    first = client(cluster.a).responses.create(model=MODEL, input=f"What is the weather in Paris? {mark}")
    assert first.output_text == TOOL_ANSWER
    second = client(cluster.b).responses.create(
        model=MODEL, input=f"Thanks {mark}-second", previous_response_id=first.id
    )
    assert second.output_text == f"You said: Thanks {mark}-second"
    assert second.previous_response_id == first.id
    seen = cluster.target().model_saw(f"{mark}-second")
    assert [m["role"] for m in seen] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert seen[3]["text"] == PARIS and seen[4]["text"] == TOOL_ANSWER
    # Streaming continues it too, and the stream's end comes only once the response is stored.
    with client(cluster.a).responses.stream(
        model=MODEL, input=f"Once more {mark}-third", previous_response_id=second.id
    ) as stream:
        third = stream.get_final_response()
    fourth = client(cluster.b).responses.create(
        model=MODEL, input=f"Last {mark}-fourth", previous_response_id=third.id
    )
    assert fourth.output_text == f"You said: Last {mark}-fourth"
    seen = cluster.target().model_saw(f"{mark}-fourth")
    # system, the tool turn (user, call, result, answer), two plain turns, the new message
    assert [m["role"] for m in seen] == ["system", "user", "assistant", "tool", "assistant"] + [
        "user",
        "assistant",
    ] * 2 + ["user"]


def test_deleting_a_response_leaves_the_chain_continuing_it_whole(cluster: Cluster) -> None:
    """A chain keeps its history once, in its responses (issue 21): deleting the first response
    of a chain, on another replica, takes nothing from the second's context. Another user's
    delete is a 404 and deletes nothing."""
    mark = marker()
    alice = client(cluster.a, "alice")
    first = alice.responses.create(model=MODEL, input=f"What is the weather in Paris? {mark}")
    second = client(cluster.b, "alice").responses.create(
        model=MODEL, input=f"Thanks {mark}-second", previous_response_id=first.id
    )
    with pytest.raises(openai.NotFoundError):
        client(cluster.b, "bob").responses.delete(first.id)
    assert client(cluster.a, "alice").responses.retrieve(first.id).id == first.id
    assert client(cluster.b, "alice").responses.delete(first.id) is None
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(first.id)
    third = alice.responses.create(model=MODEL, input=f"Again {mark}-third", previous_response_id=second.id)
    assert third.output_text == f"You said: Again {mark}-third"
    seen = cluster.target().model_saw(f"{mark}-third")
    roles = ["system", "user", "assistant", "tool", "assistant", "user", "assistant", "user"]
    assert [m["role"] for m in seen] == roles
    assert seen[1]["text"] == f"What is the weather in Paris? {mark}"
    assert [m["text"] for m in seen][3:] == [
        PARIS, TOOL_ANSWER, f"Thanks {mark}-second", f"You said: Thanks {mark}-second", f"Again {mark}-third"
    ]  # fmt: skip


def test_a_conversation_id_continues_on_another_replica_without_duplicates(cluster: Cluster) -> None:
    mark = marker()
    conversation = f"conv-{mark}"
    body = {"input": f"What is the weather in Paris? {mark}", "conversation": conversation}
    first = httpx.post(f"{cluster.a.url}/responses", json=body, timeout=60).json()
    assert first["conversation"] == {"id": conversation}
    second = httpx.post(
        f"{cluster.b.url}/invocations",
        json={"input": f"Thanks {mark}-second", "context": {"conversation_id": conversation}},
        timeout=60,
    ).json()
    assert second["output"][-1]["content"][0]["text"] == f"You said: Thanks {mark}-second"
    seen = cluster.target().model_saw(f"{mark}-second")
    assert [m["text"] for m in seen].count(TOOL_ANSWER) == 1 and any(m["text"] == PARIS for m in seen)
    # A client that resends the whole history gets no duplicated turns.
    history = [
        {"role": "user", "content": f"What is the weather in Paris? {mark}"},
        {"role": "assistant", "content": TOOL_ANSWER},
        {"role": "user", "content": f"Thanks {mark}-second"},
        {"role": "assistant", "content": f"You said: Thanks {mark}-second"},
        {"role": "user", "content": f"Bye {mark}-third"},
    ]
    httpx.post(
        f"{cluster.a.url}/invocations",
        json={"input": history, "context": {"conversation_id": conversation}},
        timeout=60,
    )
    seen = cluster.target().model_saw(f"{mark}-third")
    users = [m["text"] for m in seen if m["role"] == "user"]
    assert users == [f"What is the weather in Paris? {mark}", f"Thanks {mark}-second", f"Bye {mark}-third"]


def test_stored_responses_can_be_read_listed_and_deleted_by_their_user_only(cluster: Cluster) -> None:
    alice, bob = client(cluster.a, "alice"), client(cluster.b, "bob")
    created = alice.responses.create(model=MODEL, input=[{"role": "user", "content": "keep this"}])
    again = client(cluster.b, "alice").responses.retrieve(created.id)
    assert again.output_text == "You said: keep this" and again.status == "completed"
    items = client(cluster.b, "alice").responses.input_items.list(created.id)
    assert [i.type for i in items.data] == ["message"] and items.data[0].content[0].text == "keep this"
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError, match="not found"):
        bob.responses.create(model=MODEL, input="steal it", previous_response_id=created.id)
    replayed = httpx.get(
        f"{cluster.b.url}/responses/{created.id}?stream=true", headers={"x-user-id": "alice"}, timeout=30
    ).text
    assert "response.output_text.delta" in replayed and replayed.rstrip().endswith("}")
    assert client(cluster.b, "alice").responses.delete(created.id) is None
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(created.id)
    unstored = alice.responses.create(model=MODEL, input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(unstored.id)


def test_a_replica_killed_mid_conversation_loses_nothing(cluster: Cluster) -> None:
    mark = marker()
    first = client(cluster.a).responses.create(model=MODEL, input=f"What is the weather in Paris? {mark}")
    os.killpg(cluster.a.process.pid, signal.SIGKILL)
    cluster.a.process.wait(timeout=10)
    survivor = cluster.b if cluster.b is not cluster.a else cluster.start()
    second = client(survivor).responses.create(
        model=MODEL, input=f"Thanks {mark}-second", previous_response_id=first.id
    )
    assert second.output_text == f"You said: Thanks {mark}-second"
    assert any(m["text"] == PARIS for m in cluster.target().model_saw(f"{mark}-second"))


def _poll(server: ServerProcess, response_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{server.url}/responses/{response_id}", timeout=10).json()
        if body["status"] not in ("queued", "in_progress") or time.monotonic() > deadline:
            return dict(body)
        time.sleep(0.2)


def _stream_events(server: ServerProcess, response_id: str, after: int = -1) -> list[dict]:
    url = f"{server.url}/responses/{response_id}?stream=true&starting_after={after}"
    with httpx.stream("GET", url, timeout=60) as reply:
        return [json.loads(line[5:]) for line in reply.iter_lines() if line.startswith("data:")]


def test_a_background_run_answers_at_once_and_is_polled_and_replayed(cluster: Cluster) -> None:
    started = time.monotonic()
    queued = client(cluster.a).responses.create(
        model=MODEL, input="What is the weather in Paris? [[latency=2 chunks=8]]", background=True
    )
    assert queued.status in ("queued", "in_progress") and time.monotonic() - started < 1.5
    done = _poll(cluster.b, queued.id)
    assert done["status"] == "completed" and done["output"][-1]["content"][0]["text"] == TOOL_ANSWER
    events = _stream_events(cluster.b, queued.id)
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    # streamed from the model though the request did not stream: a follower sees the text come
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(d["delta"] for d in deltas) == TOOL_ANSWER
    later = _stream_events(cluster.a, queued.id, after=events[5]["sequence_number"])
    assert later == events[6:]


def test_a_background_run_can_be_cancelled(cluster: Cluster) -> None:
    before = httpx.get(f"{cluster.scripted.url}/scripted/stats", timeout=10).json()["streams_cancelled"]
    queued = client(cluster.a).responses.create(
        model=MODEL, input="slow [[latency=30 chunks=30]]", background=True
    )
    time.sleep(1)
    cancelled = client(cluster.b).responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    events = _stream_events(cluster.b, queued.id)
    assert events[-1]["type"] == "response.failed" and events[-1]["response"]["status"] == "cancelled"
    stats = httpx.get(f"{cluster.scripted.url}/scripted/stats", timeout=10).json()
    assert stats["streams_cancelled"] > before  # the backend's stream was cut, not left to run


def test_a_background_run_whose_replica_dies_completes_on_another(cluster: Cluster) -> None:
    survivor = cluster.b if cluster.b is not cluster.a else None
    queued = client(cluster.a).responses.create(
        model=MODEL, input="long job [[latency=4 chunks=8]]", background=True
    )
    time.sleep(1.5)  # it is running on replica a, with some events persisted
    os.killpg(cluster.a.process.pid, signal.SIGKILL)
    cluster.a.process.wait(timeout=10)
    survivor = survivor or cluster.start()
    killed_at = time.monotonic()
    done = _poll(survivor, queued.id, timeout=90)
    assert done["status"] == "completed", done
    assert done["output"][-1]["content"][0]["text"] == "You said: long job"
    assert time.monotonic() - killed_at < 40  # the lease (10 s) ran out, then a sweep took it
    events = _stream_events(survivor, queued.id)
    restarts = [
        e
        for e in events
        if e["type"] == "response.in_progress" and e["response"]["metadata"].get("agentship_attempt")
    ]
    assert [e["response"]["metadata"]["agentship_attempt"] for e in restarts] == ["2"]
    assert events[-1]["type"] == "response.completed"
    numbers = [e["sequence_number"] for e in events]
    assert numbers == list(range(len(numbers)))
    # The run taken over keeps its answer for what continues it (previous_response_id).
    mark = marker()
    client(survivor).responses.create(model=MODEL, input=f"and then? {mark}", previous_response_id=queued.id)
    seen = cluster.target().model_saw(f"and then? {mark}")
    assert [m["text"] for m in seen if m["role"] == "assistant"] == ["You said: long job"]


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_a_follower_of_a_run_taken_over_gets_the_whole_stream(cluster: Cluster) -> None:
    """openai-python's ``responses.stream(response_id=…)`` against the replica that took the run
    over: it reads the stream from ``response.created`` (kept in the store by the replica that
    died), through the restart, to the end."""
    queued = client(cluster.a).responses.create(
        model=MODEL, input="followed job [[latency=4 chunks=8]]", background=True
    )
    _wait_for(
        lambda: (
            httpx.get(f"{cluster.a.url}/responses/{queued.id}", timeout=10).json()["status"] == "in_progress"
        ),
        "the run never started on replica a",
    )
    os.killpg(cluster.a.process.pid, signal.SIGKILL)
    cluster.a.process.wait(timeout=10)
    survivor = cluster.b if cluster.b is not cluster.a else cluster.start()
    _wait_for(
        lambda: f"{queued.id}: taken over (attempt 2)" in survivor.log_text(), "no replica took it over", 90
    )
    with client(survivor).responses.stream(response_id=queued.id) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.status == "completed" and final.output[-1].content[0].text == "You said: followed job"


def test_turns_of_one_conversation_run_one_at_a_time_across_replicas(cluster: Cluster) -> None:
    mark = marker()
    conversation = {"conversation_id": f"busy-{mark}"}

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as http:
            return list(
                await asyncio.gather(
                    http.post(
                        f"{cluster.a.url}/invocations",
                        json={"input": f"one {mark}-a [[latency=1.5]]", "context": conversation},
                    ),
                    http.post(
                        f"{cluster.b.url}/invocations",
                        json={"input": f"two {mark}-b [[latency=1.5]]", "context": conversation},
                    ),
                )
            )

    replies = asyncio.run(both())
    assert [r.status_code for r in replies] == [200, 200]
    saw_a = [m["text"] for m in cluster.target().model_saw(f"{mark}-a")]
    saw_b = [m["text"] for m in cluster.target().model_saw(f"{mark}-b")]
    # Whichever ran second saw the whole first turn: the turns did not interleave.
    first, second = (saw_a, saw_b) if len(saw_a) < len(saw_b) else (saw_b, saw_a)
    assert len(second) == len(first) + 2 and second[: len(first)] == first


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    stop_postgres(server)


def test_postgres_restarted_under_load_fails_cleanly_and_recovers(
    own_postgres: PostgresServer, start_serving: Callable[..., ServerProcess], scripted: ServerProcess
) -> None:
    url = own_postgres.url(own_postgres.create_database())
    server = start_serving(scripted.url + "/v1", "--state-url", url, name="serving-pg-restart")
    http = client(server)
    mark = marker()
    last = http.responses.create(model=MODEL, input=f"start {mark}")
    own_postgres.stop("fast")
    statuses = []
    for i in range(4):
        started = time.monotonic()
        reply = httpx.post(
            f"{server.url}/responses",
            json={"input": f"down {i} {mark}", "previous_response_id": last.id},
            timeout=60,
        )
        statuses.append((reply.status_code, reply.json()["error"]["code"]))
        assert time.monotonic() - started < 15, "a request hung while the store was down"
        assert "pg-" not in reply.text and "127.0.0.1" not in reply.text
    assert statuses == [(503, "state_unavailable")] * 4
    assert httpx.get(f"{server.url}/ready", timeout=5).status_code == 200  # the server itself is fine
    own_postgres.start()
    deadline = time.monotonic() + 30
    while True:  # no restart of the replica: it reconnects by itself
        try:
            after = http.responses.create(
                model=MODEL, input=f"back {mark}-back", previous_response_id=last.id
            )
            break
        except openai.APIStatusError:
            assert time.monotonic() < deadline, "the replica did not recover"
            time.sleep(0.5)
    assert after.output_text == f"You said: back {mark}-back"
    seen = Target("restart", server, scripted, False).model_saw(f"{mark}-back")
    assert [m["text"] for m in seen if m["role"] == "user"] == [f"start {mark}", f"back {mark}-back"]


@pytest.mark.parametrize("cluster", ["postgresql"], indirect=True)  # SQLite has no credentials
def test_the_store_url_and_its_password_stay_secret(cluster: Cluster, postgres: PostgresServer) -> None:
    mark = marker()
    created = client(cluster.a).responses.create(model=MODEL, input=f"secret check {mark}")
    client(cluster.b).responses.create(model=MODEL, input="again", previous_response_id=created.id)
    for replica in cluster.replicas:
        assert "pg-SECRET-4242" not in replica.log_text()
        assert "postgresql+asyncpg://postgres:***@" in replica.log_text()  # named, redacted
        for path in ("/ready", "/version"):
            assert "SECRET" not in httpx.get(f"{replica.url}{path}", timeout=10).text
    database = cluster.state_url.rsplit("/", 1)[1]
    dump = postgres.psql(
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM agentship_responses) t", database=database
    )
    assert mark in dump and "SECRET" not in dump
    traces = wait_for_traces(TRACE_EXPERIMENT, lambda t: mark in json.dumps(t.data.request))
    assert all("SECRET" not in t.to_json() for t in traces)


def test_a_replica_refuses_a_store_whose_schema_is_too_new(
    postgres: PostgresServer, serving_model_uri: str, scripted: ServerProcess, log_dir: Path
) -> None:
    database = postgres.create_database()
    postgres.psql("CREATE TABLE alembic_version (version_num varchar(32) primary key)", database=database)
    postgres.psql("INSERT INTO alembic_version VALUES ('9999')", database=database)
    port = free_port()
    command = [sys.executable, "-m", "serving", "-m", serving_model_uri, "-p", str(port)]
    env = venv_env({"OPENAI_BASE_URL": scripted.url + "/v1", "AGENTSHIP_STATE_URL": postgres.url(database)})
    with pytest.raises(RuntimeError, match="exited") as info:
        start_server("serving-too-new", command, port=port, log_dir=log_dir, env=env, health_path="/ready")
    assert "newer than this agentship knows" in str(info.value)
