"""Nothing a client sends can wedge or crash a worker: each hostile body gets a 400 that names
the problem, its admission slot comes back, and the next normal request is served."""

from __future__ import annotations

import socket
import time
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
