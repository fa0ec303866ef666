"""Webhooks and A2A push notifications end to end (issue 23): real ``python -m serving`` replicas
on one real PostgreSQL, in front of the scripted model, posting to a receiver in the test that
verifies each delivery with openai-python's ``webhooks.unwrap``.

* a background response's end reaches every URL, signed, in OpenAI's event shape; a receiver
  that refuses the first deliveries sees the retries, with the same id, then no more;
* failed and cancelled runs are announced with their own event types;
* the replica that ran a response is SIGKILLed mid-run: the replica that takes it over announces it;
* the replica delivering a notice is SIGKILLed mid-delivery: its replacement delivers it again,
  with the same ``webhook-id``;
* an A2A task's statuses are pushed to the URL its client registered, with the client's token;
* the signing secret is in no stored row, no log and no answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.types.a2a_pb2 import StreamResponse, TaskPushNotificationConfig, TaskState
from google.protobuf.json_format import ParseDict
from openai import OpenAI
from openai.types.responses import Response as OpenAIResponse
from openai.types.webhooks import (
    ResponseCancelledWebhookEvent,
    ResponseCompletedWebhookEvent,
    ResponseFailedWebhookEvent,
)

from agentship.state import StateStore
from agentship.testing.postgres import PostgresServer
from agentship.testing.processes import ServerProcess, free_port, venv_env
from tests.serving.a2a_helpers import a2a_client, first_task, send_request
from tests.state.receiver import Delivery, Receiver
from tests.state.served import Cluster, kill, mark, serve, wait_until
from tests.state.test_store import settings

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + base64.b64encode(b"the served tests' webhook secret").decode()
VERIFIER = OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1", webhook_secret=SECRET)


def hooked(
    request: pytest.FixtureRequest, receiver: Receiver, paths: str, count: int, *args: str
) -> Iterator[Cluster]:
    pg: PostgresServer = request.getfixturevalue("postgres")
    model_uri, scripted, log_dir = (request.getfixturevalue(n) for n in ("model_uri", "scripted", "log_dir"))
    url = pg.url(pg.create_database())
    env = {
        "AGENTSHIP_WEBHOOK_URLS": ",".join(f"{receiver.url}{p}" for p in paths.split()),
        "AGENTSHIP_WEBHOOK_SECRET": SECRET,
        "AGENTSHIP_WEBHOOK_RETRY_S": "0.2",
        "AGENTSHIP_WEBHOOK_TIMEOUT_S": "5",  # a claim's lease: 2 x 5 + 5 = 15 s
        "AGENTSHIP_A2A_PUSH_PRIVATE": "1",
    }
    started: list[ServerProcess] = []

    def start() -> ServerProcess:
        started.append(serve(model_uri, url, scripted, log_dir, "webhooks", *args, **env))
        return started[-1]

    servers = [start() for _ in range(count)]
    yield Cluster(servers, url, Path("/nonexistent"), start)
    for server in started:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiving = Receiver()
    yield receiving
    receiving.close()


@pytest.fixture
def pair(request: pytest.FixtureRequest, receiver: Receiver) -> Iterator[Cluster]:
    """Two replicas announcing to ``/ok`` and ``/flaky``, serving A2A too."""
    yield from hooked(request, receiver, "/ok /flaky", 2, "--a2a")


def create(server: ServerProcess, text: str) -> OpenAIResponse:
    body = {"model": "agent", "input": text, "background": True}
    reply = httpx.post(f"{server.url}/responses", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    return OpenAIResponse.model_validate(reply.json())


def ended(server: ServerProcess, response_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def over() -> bool:
        found[:] = [httpx.get(f"{server.url}/responses/{response_id}", timeout=10).json()]
        return found[0]["status"] not in ("queued", "in_progress")

    wait_until(over, 90)
    return found[0]


def about(receiver: Receiver, path: str, response_id: str) -> list[Delivery]:
    return [d for d in receiver.at(path) if json.loads(d.body).get("data", {}).get("id") == response_id]


def arrive(receiver: Receiver, path: str, response_id: str, count: int) -> list[Delivery]:
    wait_until(lambda: len(about(receiver, path, response_id)) >= count, 60)
    return about(receiver, path, response_id)


def verified(delivery: Delivery) -> Any:
    """The event, verified by openai-python as a receiver following OpenAI's documentation would."""
    event = VERIFIER.webhooks.unwrap(delivery.body, delivery.headers)
    assert delivery.headers["webhook-id"] == event.id
    assert delivery.headers["content-type"] == "application/json"
    return event


def outbox(cluster: Cluster, subject: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        store = await StateStore.open(settings(cluster.state_url), migrate=False)
        try:
            return await store.outbox.of(subject)
        finally:
            await store.aclose()

    return asyncio.run(read())


def settled(cluster: Cluster, subject: str, count: int) -> list[dict[str, Any]]:
    """The ``count`` outbox rows about ``subject``, once each is delivered or given up (a receiver
    sees a delivery before its dispatcher records the answer)."""
    rows: list[dict[str, Any]] = []

    def done() -> bool:
        rows[:] = outbox(cluster, subject)
        return len(rows) == count and all(r["delivered_at"] or r["given_up_at"] for r in rows)

    wait_until(done, 60)
    return rows


def test_a_background_response_is_announced_signed_to_every_url_and_retried_until_taken(
    pair: Cluster, receiver: Receiver, log_dir: Path
) -> None:
    m = mark()
    started = time.time()
    response = create(pair.a, f"announce {m}")
    assert ended(pair.b, response.id)["status"] == "completed"
    [ok] = arrive(receiver, "/ok", response.id, 1)
    flaky = arrive(receiver, "/flaky", response.id, 3)
    events = [verified(d) for d in (ok, *flaky)]
    first = events[0]
    assert isinstance(first, ResponseCompletedWebhookEvent)
    assert first.model_dump() == {
        "id": first.id,
        "object": "event",
        "created_at": first.created_at,
        "type": "response.completed",
        "data": {"id": response.id},
    }
    assert first.id.startswith("evt_") and started - 1 <= first.created_at <= time.time()
    assert all(e == first for e in events)  # one event, to two URLs, the second three times
    stamps = [int(d.headers["webhook-timestamp"]) for d in flaky]
    assert stamps == sorted(stamps)
    rows = settled(pair, response.id, 2)
    assert [
        (r["destination"], r["url"], r["event_id"], r["kind"], r["user_id"], r["attempts"], r["last_status"])
        for r in rows
    ] == [
        ("webhook-0", f"{receiver.url}/ok", first.id, "response", "", 1, 200),
        ("webhook-1", f"{receiver.url}/flaky", first.id, "response", "", 3, 200),
    ]
    for row in rows:
        assert row["payload"] == json.loads(ok.body)
        assert (row["owner"], row["lease_until"], row["given_up_at"]) == (None, None, None)
        assert row["delivered_at"] is not None
    time.sleep(1.0)  # a retry would have been due 0.8 s after the last refusal
    assert len(about(receiver, "/flaky", response.id)) == 3 and len(about(receiver, "/ok", response.id)) == 1

    # the secret is nowhere but the servers' environment
    secret_bytes = base64.b64decode(SECRET[6:])
    for row in rows:
        assert SECRET not in json.dumps(row, default=str)
    for log in log_dir.glob("webhooks-*"):
        text = log.read_bytes()
        assert SECRET.encode() not in text and secret_bytes not in text
    for d in (ok, *flaky):
        assert SECRET.encode() not in d.body


def test_failed_and_cancelled_runs_are_announced_with_their_own_types(
    pair: Cluster, receiver: Receiver
) -> None:
    m = mark()
    failed = create(pair.a, f"fail {m} [[fail=400]]")
    slow = create(pair.b, f"slow {m} [[latency=30 chunks=30]]")
    assert ended(pair.a, failed.id)["status"] == "failed"
    wait_until(
        lambda: httpx.get(f"{pair.a.url}/responses/{slow.id}", timeout=10).json()["status"] == "in_progress"
    )
    cancel = httpx.post(f"{pair.a.url}/responses/{slow.id}/cancel", timeout=60)
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled", cancel.text
    for response_id, kind in (
        (failed.id, ResponseFailedWebhookEvent),
        (slow.id, ResponseCancelledWebhookEvent),
    ):
        [delivery] = arrive(receiver, "/ok", response_id, 1)
        event = verified(delivery)
        assert isinstance(event, kind) and event.data.id == response_id


def test_a_run_whose_replica_was_killed_is_announced_by_the_replica_that_took_it_over(
    pair: Cluster, receiver: Receiver
) -> None:
    m = mark()
    response = create(pair.a, f"survive {m} [[latency=8 chunks=16]]")
    wait_until(
        lambda: (
            httpx.get(f"{pair.b.url}/responses/{response.id}", timeout=10).json()["status"] == "in_progress"
        )
    )
    kill(pair.a)
    assert ended(pair.b, response.id)["status"] == "completed"
    url = f"{pair.b.url}/responses/{response.id}?stream=true"
    with httpx.stream("GET", url, timeout=60) as replay:
        events = [json.loads(line[5:]) for line in replay.iter_lines() if line.startswith("data:")]
    restarts = [
        e["response"]["metadata"].get("agentship_attempt")
        for e in events
        if e["type"] == "response.in_progress"
    ]
    assert [r for r in restarts if r] == ["2"]  # replica b took it over, and ended it
    [delivery] = arrive(receiver, "/ok", response.id, 1)
    event = verified(delivery)
    assert isinstance(event, ResponseCompletedWebhookEvent) and event.data.id == response.id
    rows = settled(pair, response.id, 2)
    assert [(r["destination"], r["event_id"], r["attempts"], r["last_status"]) for r in rows] == [
        ("webhook-0", event.id, 1, 200),
        ("webhook-1", event.id, 3, 200),
    ]


@pytest.fixture
def alone(request: pytest.FixtureRequest, receiver: Receiver) -> Iterator[Cluster]:
    """One replica announcing to ``/hang`` (a replacement is started by the test)."""
    yield from hooked(request, receiver, "/hang", 1)


def test_a_notice_whose_dispatcher_was_killed_mid_delivery_is_delivered_again(
    alone: Cluster, receiver: Receiver
) -> None:
    m = mark()
    response = create(alone.a, f"deliver {m}")
    assert ended(alone.a, response.id)["status"] == "completed"
    [held] = arrive(receiver, "/hang", response.id, 1)  # the first attempt is held unanswered
    kill(alone.a)  # well within its attempt's 5 s timeout: the attempt never ends
    replacement = alone.start()  # claims it once the dead dispatcher's lease (15 s) is over
    held, again = arrive(receiver, "/hang", response.id, 2)
    # a retry after the attempt's timeout would have come 5 s after it; this one came after the lease
    assert again.at - held.at > 10, again.at - held.at
    assert verified(held) == verified(again)
    assert held.headers["webhook-id"] == again.headers["webhook-id"]
    [row] = settled(alone, response.id, 1)
    assert (row["attempts"], row["last_status"], row["owner"]) == (2, 200, None)
    assert httpx.get(f"{replacement.url}/responses/{response.id}", timeout=10).json()["status"] == "completed"


def test_an_a2a_tasks_statuses_are_pushed_with_its_clients_token(pair: Cluster, receiver: Receiver) -> None:
    m = mark()
    push = TaskPushNotificationConfig(url=f"{receiver.url}/ok", token=f"token-{m}")

    async def send() -> Any:
        async with a2a_client(pair.a.url, streaming=False) as client:
            return await first_task(client, send_request(f"push {m}", task_push_notification_config=push))

    task = asyncio.run(send())
    assert task.status.state == TaskState.TASK_STATE_COMPLETED

    def pushes() -> list[tuple[Delivery, StreamResponse]]:
        found = []
        for d in receiver.at("/ok"):
            if "webhook-id" in d.headers and b'"data"' not in d.body:
                parsed = ParseDict(json.loads(d.body), StreamResponse())
                which = parsed.WhichOneof("payload")
                task_id = parsed.task.id if which == "task" else getattr(parsed, which).task_id
                if task_id == task.id:
                    found.append((d, parsed))
        return found

    def completed() -> bool:
        return any(
            p.WhichOneof("payload") == "status_update"
            and p.status_update.status.state == TaskState.TASK_STATE_COMPLETED
            for _, p in pushes()
        )

    wait_until(completed, 60)  # the last status: every push before it is in the outbox by now
    rows: list[dict[str, Any]] = []

    def all_delivered() -> bool:
        rows[:] = outbox(pair, task.id)
        return all(r["delivered_at"] for r in rows) and len(pushes()) == len(rows)

    wait_until(all_delivered, 60)
    seen = pushes()
    assert {p.WhichOneof("payload") for _, p in seen} <= {"task", "status_update"}  # no artifact chunks
    states = [p.status_update.status.state for _, p in seen if p.WhichOneof("payload") == "status_update"]
    assert TaskState.TASK_STATE_WORKING in states and TaskState.TASK_STATE_COMPLETED in states
    for delivery, _ in seen:
        assert delivery.headers["x-a2a-notification-token"] == f"token-{m}"
        VERIFIER.webhooks.verify_signature(delivery.body, delivery.headers)
    assert len({d.headers["webhook-id"] for d, _ in seen}) == len(seen)
    for row in rows:
        assert (row["kind"], row["url"], row["attempts"], row["last_status"]) == (
            "a2a",
            f"{receiver.url}/ok",
            1,
            200,
        )
        assert f"token-{m}" not in json.dumps(row, default=str)  # read from its config when sent
    assert sorted(json.dumps(r["payload"], sort_keys=True) for r in rows) == sorted(
        json.dumps(json.loads(d.body), sort_keys=True) for d, _ in seen
    )


def test_webhook_urls_without_the_state_store_stop_the_start(
    model_uri: str, scripted: ServerProcess, log_dir: Path, receiver: Receiver
) -> None:
    environ = venv_env(
        {
            "OPENAI_BASE_URL": scripted.url + "/v1",
            "AGENTSHIP_STATE_URL": "none",
            "AGENTSHIP_WEBHOOK_URLS": f"{receiver.url}/ok",
            "AGENTSHIP_WEBHOOK_SECRET": SECRET,
        }
    )
    command = [sys.executable, "-m", "serving", "-m", model_uri, "-p", str(free_port())]
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert (
        "webhook URLs are set, and webhooks are delivered from the state store, which is off" in done.stderr
    )
    assert SECRET not in done.stderr and SECRET not in done.stdout
