"""``Idempotency-Key`` end to end (issue 23): real ``python -m serving`` replicas over one state
store (a real PostgreSQL with two replicas, or the SQLite default with ``-w 2``), in front of the
scripted model, whose request log counts the runs.

* a client that lost its connection retries on the other replica and gets the first answer; the
  work ran once, and the conversation holds the turn once;
* concurrent duplicates, on both replicas, run once and all get the same response;
* a duplicate of a running stream on the same replica reads it live from its first event; on the
  other replica it gets the same events once it ended;
* the same key with another body, or on the other route, is a 422; another user's key is theirs;
* an answer that says nothing ran (a 503) is not kept, a failure that ran is;
* a background response is submitted once;
* a duplicate that waited its request timeout for another replica's run gets a 409, then the answer;
* without the state store, a key is a 400 naming the problem;
* the key's replica SIGKILLed mid-run: the retry runs it, once the claim's lease ran out.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from agentship.testing.processes import ServerProcess
from tests.state.served import Cluster, in_background, kill, mark, model_users, serve, turn, wait_until

pytestmark = pytest.mark.e2e

EVENT = TypeAdapter(ResponseStreamEvent)


def post(
    server: ServerProcess, path: str, body: dict[str, Any], key: str, timeout: float = 120, **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{server.url}{path}", json=body, headers={"Idempotency-Key": key, **headers}, timeout=timeout
    )


def said(reply: dict[str, Any]) -> str:
    return str(reply["output"][-1]["content"][0]["text"])


def stream(
    server: ServerProcess, body: dict[str, Any], key: str, started: Any = None
) -> tuple[str | None, list[str]]:
    """(the replayed header, each event's data) of a streamed ``/responses``; ``started`` is
    called once the first text delta arrived."""
    data = []
    headers = {"Idempotency-Key": key}
    with httpx.stream("POST", f"{server.url}/responses", json=body, headers=headers, timeout=120) as reply:
        assert reply.status_code == 200, reply.read()
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line.startswith("data:"):
                data.append(line[5:].strip())
                if started is not None and json.loads(data[-1])["type"] == "response.output_text.delta":
                    started()
                    started = None
        return reply.headers.get("idempotent-replayed"), data


def test_a_retry_after_a_lost_connection_gets_the_first_answer_and_the_work_runs_once(
    cluster: Cluster, scripted: ServerProcess
) -> None:
    m = mark()
    text = f"slow {m} [[latency=3]]"
    body = {"input": [{"role": "user", "content": text}], "context": {"conversation_id": m}}
    with pytest.raises(httpx.ReadTimeout):  # the connection is lost; the run goes on
        post(cluster.a, "/invocations", body, f"key-{m}", timeout=1)
    retried = post(cluster.b, "/invocations", body, f"key-{m}")  # it waits for the first run's end
    assert retried.status_code == 200, retried.text
    assert retried.headers["idempotent-replayed"] == "true"
    assert said(retried.json()) == f"You said: slow {m}"
    again = post(cluster.a, "/invocations", body, f"key-{m}")
    assert (again.status_code, again.headers["idempotent-replayed"], again.content) == (
        200,
        "true",
        retried.content,
    )
    assert len(model_users(scripted, f"slow {m}")) == 1
    assert turn(cluster.b, m, f"next {m}").status_code == 200
    assert model_users(scripted, f"next {m}")[-1] == [text, f"next {m}"]  # the turn is kept once


def test_concurrent_duplicates_on_both_replicas_run_once_and_get_one_response(
    cluster: Cluster, scripted: ServerProcess
) -> None:
    m = mark()
    body = {"model": "agent", "input": f"together {m} [[latency=1]]"}

    async def at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120) as http:
            headers = {"Idempotency-Key": f"key-{m}"}
            servers = [cluster.a, cluster.b] * 3
            return list(
                await asyncio.gather(
                    *(http.post(f"{s.url}/responses", json=body, headers=headers) for s in servers)
                )
            )

    replies = asyncio.run(at_once())
    assert [r.status_code for r in replies] == [200] * 6, [r.text for r in replies]
    assert sorted(str(r.headers.get("idempotent-replayed")) for r in replies) == ["None"] + ["true"] * 5
    first = OpenAIResponse.model_validate(replies[0].json())
    assert first.status == "completed" and first.output_text == f"You said: together {m}"
    assert all(r.json() == replies[0].json() for r in replies)
    assert len(model_users(scripted, f"together {m}")) == 1
    stored = httpx.get(f"{cluster.b.url}/responses/{first.id}", timeout=10).json()
    assert stored == replies[0].json()


def test_a_duplicate_reads_a_running_stream_live_on_its_replica_and_whole_on_the_other(
    cluster: Cluster, scripted: ServerProcess
) -> None:
    m = mark()
    body = {"model": "agent", "input": f"stream {m} [[latency=3 chunks=12]]", "stream": True}
    joiners: list[Any] = []

    def join() -> None:
        joiners.append(in_background(lambda: stream(cluster.a, body, f"key-{m}")))
        joiners.append(in_background(lambda: stream(cluster.b, body, f"key-{m}")))

    replayed, first = stream(cluster.a, body, f"key-{m}", started=join)
    assert replayed is None
    events = [EVENT.validate_json(data) for data in first]
    assert [e.type for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text_deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(text_deltas) > 1
    for joined in joiners:
        assert joined() == ("true", first)  # every event, from the first, in order
    assert len(model_users(scripted, f"stream {m}")) == 1


def test_a_key_is_one_request_of_one_user(cluster: Cluster, scripted: ServerProcess) -> None:
    m = mark()
    body = {"model": "agent", "input": f"mine {m}"}
    first = post(cluster.a, "/responses", body, f"key-{m}", **{"x-user-id": "alice"})
    assert first.status_code == 200, first.text
    for path, other in (
        ("/responses", {**body, "input": f"other {m}"}),
        ("/invocations", {"input": f"mine {m}"}),
    ):
        refused = post(cluster.b, path, other, f"key-{m}", **{"x-user-id": "alice"})
        assert refused.status_code == 422, refused.text
        assert refused.json() == {
            "error": {
                "message": "this Idempotency-Key was used with a different request: use a new key for a new request",
                "type": "invalid_request_error",
                "param": "Idempotency-Key",
                "code": "idempotency_key_reused",
            }
        }
    bobs = post(cluster.b, "/responses", body, f"key-{m}", **{"x-user-id": "bob"})
    assert bobs.status_code == 200 and "idempotent-replayed" not in bobs.headers
    assert bobs.json()["id"] != first.json()["id"]
    assert len(model_users(scripted, f"mine {m}")) == 2
    assert len(model_users(scripted, f"other {m}")) == 0
    bad = post(cluster.a, "/responses", body, "x" * 256)
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "Idempotency-Key")
    assert (
        bad.json()["error"]["message"]
        == "the Idempotency-Key header must be 1 to 255 printable ASCII characters"
    )


def test_an_answer_that_ran_nothing_is_not_kept_and_one_that_failed_is(
    cluster: Cluster, scripted: ServerProcess
) -> None:
    m = mark()
    busy = {"input": [{"role": "user", "content": f"busy {m} [[fail=429*1]]"}]}
    refused = post(cluster.a, "/invocations", busy, f"busy-{m}")
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "upstream_rate_limited")
    retried = post(cluster.b, "/invocations", busy, f"busy-{m}")  # the key was let go: it runs
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert len(model_users(scripted, f"busy {m}")) == 2
    broken = {"input": [{"role": "user", "content": f"broken {m} [[fail=500]]"}]}
    failed = post(cluster.a, "/invocations", broken, f"broken-{m}")
    assert (failed.status_code, failed.json()["error"]["code"]) == (502, "upstream_error")
    replayed = post(cluster.b, "/invocations", broken, f"broken-{m}")
    assert (replayed.status_code, replayed.headers["idempotent-replayed"], replayed.content) == (
        502,
        "true",
        failed.content,
    )
    assert len(model_users(scripted, f"broken {m}")) == 1


def test_a_background_response_is_submitted_once(cluster: Cluster, scripted: ServerProcess) -> None:
    m = mark()
    body = {"model": "agent", "input": f"job {m} [[latency=1]]", "background": True}
    first = post(cluster.a, "/responses", body, f"key-{m}")
    second = post(cluster.b, "/responses", body, f"key-{m}")
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "queued" and second.json() == first.json()
    response_id = first.json()["id"]

    def done() -> bool:
        return (
            httpx.get(f"{cluster.b.url}/responses/{response_id}", timeout=10).json()["status"] == "completed"
        )

    wait_until(done)
    assert len(model_users(scripted, f"job {m}")) == 1


def test_the_keys_replica_killed_mid_run_the_retry_runs_it_once_its_claim_ran_out(
    cluster: Cluster, scripted: ServerProcess
) -> None:
    m = mark()
    body = {"input": [{"role": "user", "content": f"doomed {m} [[latency=8]]"}]}
    pending = in_background(lambda: post(cluster.a, "/invocations", body, f"key-{m}"))
    wait_until(lambda: bool(model_users(scripted, f"doomed {m}")))
    kill(cluster.a)
    assert isinstance(pending(), httpx.HTTPError)
    survivor = cluster.b if cluster.b is not cluster.a else cluster.start()
    retried = post(survivor, "/invocations", body, f"key-{m}")  # waits for the claim's lease to run out
    assert retried.status_code == 200, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert said(retried.json()) == f"You said: doomed {m}"
    assert len(model_users(scripted, f"doomed {m}")) == 2


def test_a_duplicate_that_waits_longer_than_its_request_timeout_gets_a_409_then_the_answer(
    cluster: Cluster, scripted: ServerProcess, model_uri: str, log_dir: Path
) -> None:
    m = mark()
    impatient = serve(
        model_uri, cluster.state_url, scripted, log_dir, "impatient", SERVING_REQUEST_TIMEOUT_S="2"
    )
    try:
        body = {"model": "agent", "input": f"long {m} [[latency=6]]"}
        first = in_background(lambda: post(cluster.a, "/responses", body, f"key-{m}"))
        wait_until(lambda: bool(model_users(scripted, f"long {m}")))
        busy = post(impatient, "/responses", body, f"key-{m}")
        assert busy.status_code == 409, busy.text
        assert busy.headers["retry-after"] == "1"
        assert busy.json() == {
            "error": {
                "message": "a request with this Idempotency-Key is still running; retry later",
                "type": "invalid_request_error",
                "param": "Idempotency-Key",
                "code": "idempotency_key_in_use",
            }
        }
        answered = first()
        assert answered.status_code == 200, answered.text
        later = post(impatient, "/responses", body, f"key-{m}")
        assert (later.status_code, later.headers["idempotent-replayed"], later.content) == (
            200,
            "true",
            answered.content,
        )
        assert len(model_users(scripted, f"long {m}")) == 1
    finally:
        impatient.stop()


def test_a_key_without_the_state_store_is_a_400_naming_it(
    model_uri: str, scripted: ServerProcess, log_dir: Path
) -> None:
    stateless = serve(model_uri, "none", scripted, log_dir, "stateless")
    try:
        m = mark()
        body = {"model": "agent", "input": f"keyless {m}"}
        refused = post(stateless, "/responses", body, f"key-{m}")
        assert refused.status_code == 400
        assert refused.json() == {
            "error": {
                "message": "Idempotency-Key needs the state store, and it is off (AGENTSHIP_STATE_URL=none)",
                "type": "invalid_request_error",
                "param": "Idempotency-Key",
                "code": None,
            }
        }
        assert model_users(scripted, f"keyless {m}") == []
        assert post(stateless, "/responses", body, f"key-{m}").status_code == 400
        plain = httpx.post(f"{stateless.url}/responses", json=body, timeout=60)
        assert plain.status_code == 200, plain.text
    finally:
        stateless.stop()
