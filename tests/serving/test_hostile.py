"""Nothing a client sends can wedge or crash a worker: each hostile body gets a 400 that names
the problem, its admission slot comes back, and the next normal request is served."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from urllib.parse import urlparse

import httpx
import pytest

from agentship.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

HOSTILE = [
    pytest.param(
        b"[" * 200_000, "nests arrays or objects 200000 levels deep; the limit is 64", id="200k-brackets"
    ),
    pytest.param(b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}", "levels deep", id="deep-arrays"),
    pytest.param(
        b'{"input": "hi", "x": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b"}",
        "levels deep",
        id="deep-objects",
    ),
    pytest.param(
        b'{"input": "hi", "temperature": ' + b"9" * 5000 + b"}", "5000 characters long", id="5000-digits"
    ),
    pytest.param(b'{"input": "hi", "top_p": 1e999999}', "out of range", id="huge-float"),
    pytest.param(b'{"input": "hi", "temperature": NaN}', "NaN is not a valid JSON number", id="nan"),
    pytest.param(b'{"input": {"role": "user", "content": "hi"}}', "'input'", id="input-object"),
    pytest.param(b'{"input": 42}', "'input'", id="input-number"),
    pytest.param(b'{"input": [42]}', "input[0]", id="input-item-number"),
    pytest.param(b'{"input": "hi", "stream": "yes"}', "'stream'", id="stream-string"),
    pytest.param(
        b'{"input": [{"role": "user", "content": {"nested": true}}]}', "input[0]", id="content-object"
    ),
    pytest.param(b'"just a string"', "must be a JSON object", id="top-level-string"),
]


def ready(server: ServerProcess) -> dict:
    return dict(httpx.get(f"{server.url}/ready", timeout=10).json())


@pytest.mark.parametrize("path", ["/invocations", "/responses"])
@pytest.mark.parametrize(("content", "problem"), HOSTILE)
def test_a_hostile_body_is_a_400_naming_the_problem(
    serving: ServerProcess, path: str, content: bytes, problem: str
) -> None:
    reply = httpx.post(
        f"{serving.url}{path}", content=content, headers={"content-type": "application/json"}, timeout=30
    )
    assert reply.status_code == 400, reply.text[:500]
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and problem in error["message"], error
    assert "Traceback" not in reply.text and len(reply.content) < 2000


def test_after_every_hostile_body_the_worker_still_serves_and_holds_no_slot(serving: ServerProcess) -> None:
    for param in HOSTILE:
        for path in ("/invocations", "/responses"):
            httpx.post(f"{serving.url}{path}", content=param.values[0], timeout=30)
    assert ready(serving)["in_flight"] == 0
    reply = httpx.post(f"{serving.url}/responses", json={"input": "still here?"}, timeout=60)
    assert (
        reply.status_code == 200
        and reply.json()["output"][-1]["content"][0]["text"] == "You said: still here?"
    )
    assert ready(serving)["in_flight"] == 0


def test_a_client_that_hangs_up_while_uploading_is_not_an_error(serving: ServerProcess) -> None:
    address = urlparse(serving.url)
    for _ in range(5):
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                b"content-length: 100000\r\n\r\n" + b'{"input": "' + b"a" * 1000
            )
            time.sleep(0.1)  # hang up halfway through the body
    deadline = time.monotonic() + 10
    while ready(serving)["in_flight"] != 0:
        assert time.monotonic() < deadline, "a slot leaked"
        time.sleep(0.1)
    assert httpx.post(f"{serving.url}/invocations", json={"input": "next"}, timeout=60).status_code == 200
    log = serving.log_text()
    assert "Traceback" not in log and "unexpected error" not in log


def test_oversized_bodies_are_refused_before_they_are_read(serving: ServerProcess) -> None:
    address = urlparse(serving.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(b"POST /responses HTTP/1.1\r\nHost: x\r\ncontent-length: 900000000\r\n\r\n{")
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413")
    assert ready(serving)["in_flight"] == 0


ESCAPED_QUOTES = b'{"input":"' + b'\\"' * ((1_048_576 - 10) // 2)
"""A mebibyte of escaped quotes in an unterminated string: the old body scanner's quadratic case
(80 KB of it stalled a worker for 27 s; this much, for about an hour)."""


async def _hostile_while_health_answers(url: str, path: str, headers: dict[str, str]) -> tuple:
    """POST the hostile body and ask /health meanwhile: the health answers that came back while
    the hostile request was being handled, and the hostile answer."""
    async with httpx.AsyncClient(timeout=60) as client:
        hostile = asyncio.ensure_future(client.post(f"{url}{path}", content=ESCAPED_QUOTES, headers=headers))
        answered = 0
        while not hostile.done():
            health = await client.get(f"{url}/health", timeout=10)
            assert health.status_code == 200
            answered += 1
            await asyncio.sleep(0.05)
        return answered, await hostile


@pytest.mark.parametrize("path", ["/invocations", "/responses"])
def test_a_mebibyte_of_escaped_quotes_is_a_400_and_health_answers_meanwhile(
    serving: ServerProcess, path: str
) -> None:
    _, reply = asyncio.run(
        _hostile_while_health_answers(serving.url, path, {"content-type": "application/json"})
    )
    assert reply.status_code == 400, reply.text[:300]
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("the request body is not valid JSON: Unterminated string")
    assert ready(serving)["in_flight"] == 0


def test_a_mebibyte_of_escaped_quotes_on_a2a_is_a_parse_error(a2a_serving: ServerProcess) -> None:
    headers = {"A2A-Version": "1.0", "content-type": "application/json"}
    _, reply = asyncio.run(_hostile_while_health_answers(a2a_serving.url, "/", headers))
    assert reply.json()["error"]["code"] == -32700
    assert ready(a2a_serving)["in_flight"] == 0


def _partial_upload(url: str, path: str = "/responses") -> socket.socket:
    """A connection that sent its headers and part of its body, then nothing."""
    address = urlparse(url)
    sock = socket.create_connection((address.hostname, address.port), timeout=30)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n".encode()
        + b"content-length: 1000\r\n\r\n"
        + b'{"input": "slow'
    )
    return sock


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_idle_uploads_hold_no_slot_and_are_cut_off(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess
) -> None:
    """A slowloris: with room for 4 requests, 8 connections that stop halfway through their
    bodies shut nobody out, and each gets a 408 once its body has stalled too long."""
    server = start_serving(
        scripted.url + "/v1",
        "--max-concurrency",
        "4",
        "-t",
        "20",
        "--body-timeout",
        "3",
        name="serving-slowloris",
    )
    idle = [_partial_upload(server.url) for _ in range(8)]
    try:
        for _ in range(3):  # while they idle, normal requests are served
            reply = httpx.post(f"{server.url}/responses", json={"input": "through?"}, timeout=30)
            assert reply.status_code == 200, reply.text
            assert reply.json()["output"][-1]["content"][0]["text"] == "You said: through?"
            assert ready(server)["in_flight"] == 0
        for sock in idle:  # then each idle upload is answered and closed
            head = _until_closed(sock)
            status, _, rest = head.partition(b"\r\n")
            assert status == b"HTTP/1.1 408 Request Timeout", head
            body = json.loads(rest.partition(b"\r\n\r\n")[2])
            assert body["error"]["code"] == "request_timeout"
            assert body["error"]["type"] == "invalid_request_error"
            assert body["error"]["message"].startswith(
                "the request body did not arrive in time (15 bytes in "
            )
    finally:
        for sock in idle:
            sock.close()
    assert ready(server)["in_flight"] == 0


def test_a_trickling_upload_is_cut_off_at_the_minimum_rate(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess
) -> None:
    """One byte every half second never pauses long enough for the idle limit, but falls below
    the minimum rate once the grace has passed."""
    server = start_serving(
        scripted.url + "/v1", "--body-timeout", "2", "--body-min-rate", "100", name="serving-trickle"
    )
    sock = _partial_upload(server.url, "/invocations")
    try:
        sock.settimeout(0.5)
        head = b""
        for _ in range(120):
            try:
                head = sock.recv(65536)
                break
            except TimeoutError:
                sock.sendall(b"x")
        assert head.startswith(b"HTTP/1.1 408 "), head
    finally:
        sock.close()
    assert httpx.post(f"{server.url}/invocations", json={"input": "next"}, timeout=30).status_code == 200


def test_a_background_submit_past_the_limit_is_a_429_in_the_error_shape(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess
) -> None:
    server = start_serving(scripted.url + "/v1", "--max-background-runs", "1", name="serving-bg-busy")
    first = httpx.post(
        f"{server.url}/responses", json={"input": "slow [[latency=3]]", "background": True}, timeout=30
    )
    assert first.status_code == 200 and first.json()["status"] == "queued"
    busy = httpx.post(f"{server.url}/responses", json={"input": "hi", "background": True}, timeout=30)
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    assert busy.json() == {
        "error": {
            "message": "this replica runs 1 background responses already; retry later",
            "type": "rate_limit_error",
            "param": None,
            "code": "server_busy",
        }
    }
    assert ready(server)["in_flight"] == 0
