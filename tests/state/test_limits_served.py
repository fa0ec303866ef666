"""Per-key limits and token budgets end to end (issue 23): two real ``python -m serving``
replicas over one real PostgreSQL, with limits set in their key file, in front of the scripted
model.

* requests per minute are exact across replicas: of concurrent requests on both, exactly the
  limit is answered, the rest get a 429 with ``Retry-After`` and OpenAI's ``x-ratelimit-*``
  headers, and every admitted answer carries the headers too;
* a day's token budget: a backend that reports no usage is counted by estimate (and labelled so
  on ``/metrics``), a reported usage as reported; once spent, a 429 naming the budget;
* a key without limits is answered without the headers;
* A2A messages count against the same limits (a JSON-RPC error past one, with the same 429);
  reading a task does not.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentship.testing.postgres import PostgresServer
from agentship.testing.processes import ServerProcess
from tests.state.served import mark, serve

pytestmark = pytest.mark.e2e

KEYS = """
tier small rpm=4
alice:key-alice-41 tier=small
bob:key-bob-77 tpd=60
carol:key-carol-90 tpd=100000
ops:key-ops-12 tier=unlimited
tier unlimited
"""


@pytest.fixture
def replicas(
    model_uri: str, scripted: ServerProcess, log_dir: Path, tmp_path: Path, postgres: PostgresServer
) -> Iterator[tuple[list[ServerProcess], PostgresServer, str]]:
    keys = tmp_path / "keys.txt"
    keys.write_text(KEYS)
    database = postgres.create_database()
    servers = [
        serve(
            model_uri,
            postgres.url(database),
            scripted,
            log_dir,
            "limits",
            "--a2a",
            AGENTSHIP_API_KEYS_FILE=str(keys),
        )
        for _ in range(2)
    ]
    yield servers, postgres, database
    for server in servers:
        server.stop()


def ask(server: ServerProcess, key: str, text: str) -> httpx.Response:
    body = {"model": "agent", "input": text}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(f"{server.url}/v1/responses", json=body, headers=headers, timeout=60)


def streamed(server: ServerProcess, key: str, text: str) -> tuple[httpx.Response, dict[str, Any]]:
    """A streamed request: its answer (headers) and the response its terminal event carries."""
    body = {"model": "agent", "input": text, "stream": True}
    headers = {"authorization": f"Bearer {key}"}
    with httpx.stream("POST", f"{server.url}/v1/responses", json=body, headers=headers, timeout=60) as reply:
        assert reply.status_code == 200, reply.read()
        events = [json.loads(line[5:]) for line in reply.iter_lines() if line.startswith("data:")]
    return reply, dict(events[-1]["response"])


def counter(servers: list[ServerProcess], name: str, labels: str) -> float:
    """A counter summed over the replicas' ``/metrics``."""
    total = 0.0
    for server in servers:
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
        found = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
        total += float(found.group(1)) if found else 0.0
    return total


def test_requests_per_minute_are_exact_across_replicas(
    replicas: tuple[list[ServerProcess], PostgresServer, str],
) -> None:
    servers, _, _ = replicas
    if time.time() % 60 > 40:  # the burst stays inside one minute's count
        time.sleep(61 - time.time() % 60)
    m = mark()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as http:
            headers = {"authorization": "Bearer key-alice-41"}
            return list(
                await asyncio.gather(
                    *(
                        http.post(
                            f"{servers[i % 2].url}/v1/responses",
                            json={"model": "agent", "input": f"burst {m} {i}"},
                            headers=headers,
                        )
                        for i in range(10)
                    )
                )
            )

    replies = asyncio.run(burst())
    answered = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 429]
    assert (len(answered), len(refused)) == (4, 6), [r.status_code for r in replies]
    assert sorted(r.headers["x-ratelimit-remaining-requests"] for r in answered) == ["0", "1", "2", "3"]
    for reply in answered:
        assert reply.headers["x-ratelimit-limit-requests"] == "4"
        assert re.fullmatch(r"[1-9]s|[1-5][0-9]s|1m0s", reply.headers["x-ratelimit-reset-requests"])
        assert "x-ratelimit-limit-tokens" not in reply.headers
    for reply in refused:
        assert reply.json() == {
            "error": {
                "message": "this caller is over its 4 requests per minute; retry after the reset",
                "type": "rate_limit_error",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        assert 1 <= int(reply.headers["retry-after"]) <= 60
        assert (
            reply.headers["x-ratelimit-limit-requests"],
            reply.headers["x-ratelimit-remaining-requests"],
        ) == (
            "4",
            "0",
        )
    assert counter(servers, "agentship_rate_limited_total", 'limit="requests"') == 6
    unlimited = ask(servers[0], "key-ops-12", f"no limits {m}")
    assert unlimited.status_code == 200
    assert not [h for h in unlimited.headers if h.startswith("x-ratelimit-")]


def test_a_days_token_budget_counts_estimates_and_reported_usage(
    replicas: tuple[list[ServerProcess], PostgresServer, str],
) -> None:
    servers, postgres, database = replicas
    m = mark()
    first, final = streamed(servers[0], "key-bob-77", f"long {m} [[nousage words=80]]")
    assert final["status"] == "completed"
    assert final["usage"] is None  # the backend reported none (as llama.cpp's streams): an estimate counts
    assert (first.headers["x-ratelimit-limit-tokens"], first.headers["x-ratelimit-remaining-tokens"]) == (
        "60",
        "60",
    )
    spent = int(
        postgres.psql(
            "SELECT tokens FROM agentship_usage WHERE subject = 'bob' AND period LIKE 'd%'", database
        )
    )
    assert spent > 60
    assert counter(servers, "agentship_limited_tokens_total", 'source="estimated"') == spent
    refused = ask(servers[1], "key-bob-77", f"more {m}")
    assert refused.status_code == 429
    assert refused.json()["error"]["message"] == (
        "this caller has used its 60 tokens for the day; retry after the reset"
    )
    assert (refused.headers["x-ratelimit-remaining-tokens"], refused.headers["x-ratelimit-limit-tokens"]) == (
        "0",
        "60",
    )
    assert 1 <= int(refused.headers["retry-after"]) <= 86_400
    assert counter(servers, "agentship_rate_limited_total", 'limit="tokens"') == 1
    reported = ask(servers[1], "key-carol-90", f"short {m}")
    assert reported.status_code == 200, reported.text
    total = reported.json()["usage"]["total_tokens"]
    assert counter(servers, "agentship_limited_tokens_total", 'source="reported"') == total
    again = ask(servers[0], "key-carol-90", f"again {m}")
    assert again.headers["x-ratelimit-remaining-tokens"] == str(100_000 - total)


def test_a2a_messages_count_against_the_same_limits(
    replicas: tuple[list[ServerProcess], PostgresServer, str],
) -> None:
    servers, _, _ = replicas
    if time.time() % 60 > 40:  # the requests stay inside one minute's count
        time.sleep(61 - time.time() % 60)
    m = mark()
    headers = {"authorization": "Bearer key-alice-41"}

    def call(server: ServerProcess, method: str, params: dict[str, Any]) -> httpx.Response:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        return httpx.post(f"{server.url}/", json=body, headers=headers, timeout=60)

    def message(server: ServerProcess, i: int) -> httpx.Response:
        text = {"kind": "text", "text": f"a2a {m} {i}"}
        sent = {"kind": "message", "role": "user", "messageId": f"{m}-{i}", "parts": [text]}
        return call(server, "message/send", {"message": sent})

    assert ask(servers[0], "key-alice-41", f"first {m}").status_code == 200  # 1 of 4
    sent = [message(servers[i % 2], i) for i in range(3)]  # 2, 3 and 4 of 4
    for i, reply in enumerate(sent):
        assert reply.status_code == 200, reply.text
        assert reply.json()["result"]["status"]["state"] == "completed"
        assert (
            reply.headers["x-ratelimit-limit-requests"],
            reply.headers["x-ratelimit-remaining-requests"],
        ) == (
            "4",
            str(2 - i),
        )
    refused = message(servers[1], 3)
    assert refused.status_code == 429
    assert refused.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": -32000,
            "message": "this caller is over its 4 requests per minute; retry after the reset",
            "data": {"code": "rate_limit_exceeded"},
        },
    }
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    task = call(servers[0], "tasks/get", {"id": sent[0].json()["result"]["id"]})  # runs nothing
    assert task.status_code == 200 and task.json()["result"]["status"]["state"] == "completed"
    assert counter(servers, "agentship_rate_limited_total", 'limit="requests"') == 1
