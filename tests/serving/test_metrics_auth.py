"""``GET /metrics`` (prometheus-client) and bearer-key authentication, against real
``python -m serving`` processes in front of the scripted model."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env
from tests.serving.clients import PARIS, TOOL_ANSWER, marker
from tests.serving.conftest import TRACE_EXPERIMENT

pytestmark = pytest.mark.e2e

ALICE, BOB, CAROL = "key-alice-4c1d", "key-bob-99e0", "key-carol-7a21"


def samples(server: ServerProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``/metrics``, parsed with prometheus-client's own parser."""
    reply = httpx.get(f"{server.url}/metrics", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def ask(
    server: ServerProcess, text: str, headers: dict[str, str] | None = None, **body: object
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/invocations",
        json={"input": [{"role": "user", "content": text}], **body},
        headers=headers,
        timeout=60,
    )


# -- metrics --------------------------------------------------------------------------------------
def test_requests_latency_tokens_and_errors_are_counted(serving: ServerProcess) -> None:
    before = samples(serving)
    answer = ask(serving, "What is the weather in Paris?")
    assert answer.status_code == 200
    usage = answer.json()["usage"]
    assert ask(serving, "fail please [[fail=503]]").status_code == 502
    assert (
        httpx.post(f"{serving.url}/responses", json={"input": "hi", "stream": True}, timeout=30).status_code
        == 200
    )
    assert httpx.post(f"{serving.url}/invocations", content=b"{", timeout=10).status_code == 400
    after = samples(serving)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("agentship_requests_total", route="/invocations", status="200") == 1
    assert grew("agentship_requests_total", route="/invocations", status="502") == 1
    assert grew("agentship_requests_total", route="/invocations", status="400") == 1
    assert grew("agentship_requests_total", route="/responses", status="200") == 1
    assert grew("agentship_request_duration_seconds_count", route="/invocations") == 3
    assert grew("agentship_time_to_first_event_seconds_count") >= 2
    assert grew("agentship_backend_errors_total", code="upstream_error") == 1
    assert grew("agentship_tokens_total", kind="input") >= usage["input_tokens"]
    assert grew("agentship_tokens_total", kind="output") >= usage["output_tokens"]
    assert value(after, "agentship_trace_export_queue_depth") == 0  # the exporter's hook, until it reports
    assert ("agentship_trace_export_dropped_total", frozenset()) in after


def test_in_flight_counts_an_open_stream(serving: ServerProcess) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            body = {"input": [{"role": "user", "content": "slow [[ttft=1.5]]"}], "stream": True}
            async with client.stream("POST", f"{serving.url}/invocations", json=body) as stream:
                assert stream.status_code == 200
                during = await asyncio.to_thread(samples, serving)
                assert value(during, "agentship_requests_in_flight", route="/invocations") >= 1
                async for _ in stream.aiter_lines():
                    pass
        after = await asyncio.to_thread(samples, serving)
        assert value(after, "agentship_requests_in_flight", route="/invocations") == 0

    asyncio.run(scenario())


def test_unknown_paths_share_one_label(serving: ServerProcess) -> None:
    for path in ("/nope-1", "/nope-2"):
        assert httpx.get(serving.url + path, timeout=10).status_code == 404
    found = samples(serving)
    assert value(found, "agentship_requests_total", route="other", status="404") >= 2
    assert not any("nope" in str(labels) for _, labels in found)


def test_several_workers_are_summed(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess
) -> None:
    server = start_serving(scripted.url + "/v1", "-w", "2", name="serving-2-workers")
    pids, asked = set(), 0
    while len(pids) < 2 and asked < 60:  # the kernel hands connections to either worker
        assert ask(server, "hello").status_code == 200
        asked += 1
        pids.add(httpx.get(f"{server.url}/ready", timeout=10).json()["pid"])
    assert len(pids) == 2, "both workers should have answered"
    for _ in range(4):  # whichever worker answers the scrape reports both workers' requests
        found = samples(server)
        assert value(found, "agentship_requests_total", route="/invocations", status="200") == asked


# -- authentication -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.txt"
    path.write_text(f"# mounted from a Secret\ncarol:{CAROL}\n")
    return path


@pytest.fixture(scope="module")
def guarded(
    serving_model_uri: str, scripted: ServerProcess, key_file: Path, log_dir: Path
) -> Iterator[ServerProcess]:
    """Keys from the environment (Alice, Bob) and from a file (Carol)."""
    port = free_port()
    command = [sys.executable, "-m", "serving", "-m", serving_model_uri, "-p", str(port),
               "--api-keys-file", str(key_file)]  # fmt: skip
    env = venv_env(
        {
            "OPENAI_BASE_URL": scripted.url + "/v1",
            "MLFLOW_EXPERIMENT_NAME": TRACE_EXPERIMENT,
            "AGENTSHIP_API_KEYS": f"alice:{ALICE}, bob:{BOB}",
        }
    )
    server = start_server("serving-auth", command, port=port, log_dir=log_dir, env=env, health_path="/ready")
    yield server
    server.stop()
    assert not any(key in server.log_text() for key in (ALICE, BOB, CAROL))


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **extra}


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        (bearer("wrong"), "invalid_api_key"),
        ({"authorization": ALICE}, "invalid_api_key"),
    ],
)
def test_a_missing_or_wrong_key_is_a_401_in_the_openai_shape(
    guarded: ServerProcess, headers: dict[str, str], code: str
) -> None:
    for method, path in (
        ("POST", "/invocations"),
        ("POST", "/responses"),
        ("GET", "/v1/models"),
        ("GET", "/version"),
    ):
        reply = httpx.request(method, guarded.url + path, json={"input": "hi"}, headers=headers, timeout=10)
        assert reply.status_code == 401, (path, reply.text)
        assert reply.headers["www-authenticate"] == "Bearer"
        error = reply.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == code and error["type"] == "invalid_request_error"
        assert ALICE not in reply.text


def test_probes_and_the_scrape_stay_open(guarded: ServerProcess) -> None:
    for path in ("/health", "/ready", "/metrics"):
        assert httpx.get(guarded.url + path, timeout=10).status_code == 200
    found = samples(guarded)
    assert value(found, "agentship_requests_total", route="/invocations", status="401") >= 1


def test_keys_from_the_environment_and_the_file_answer(guarded: ServerProcess) -> None:
    for key in (ALICE, BOB, CAROL):
        reply = ask(guarded, "What is the weather in Paris?", bearer(key))
        assert reply.status_code == 200, reply.text
        assert reply.json()["output"][-1]["content"][0]["text"] == TOOL_ANSWER
    assert PARIS in str(reply.json())


def test_a_rotated_key_file_is_read_again(guarded: ServerProcess, key_file: Path) -> None:
    rotated = "key-dave-31f0"
    original = key_file.read_text()
    key_file.write_text(original + f"dave:{rotated}\n")
    try:
        deadline = time.monotonic() + 10
        while ask(guarded, "hi", bearer(rotated)).status_code != 200:
            assert time.monotonic() < deadline, "the new key was never accepted"
            time.sleep(0.2)
    finally:
        key_file.write_text(original)
    assert ask(guarded, "hi", bearer(rotated)).status_code == 401


def test_the_identity_owns_stored_responses_and_beats_the_header(guarded: ServerProcess) -> None:
    url = f"{guarded.url}/responses"
    created = httpx.post(url, json={"input": "remember me", "user": "bob"}, headers=bearer(ALICE), timeout=30)
    assert created.status_code == 200
    response_id = created.json()["id"]
    assert httpx.get(f"{url}/{response_id}", headers=bearer(ALICE), timeout=10).status_code == 200
    # Bob cannot reach it, neither by claiming Alice's name in the header nor in the body.
    impostor = bearer(BOB, **{"x-user-id": "alice"})
    assert httpx.get(f"{url}/{response_id}", headers=impostor, timeout=10).status_code == 404
    follow = {"input": "and now?", "previous_response_id": response_id, "user": "alice"}
    assert httpx.post(url, json=follow, headers=impostor, timeout=30).status_code == 400
    # The body's "bob" did not make it Bob's either.
    assert httpx.get(f"{url}/{response_id}", headers=bearer(BOB), timeout=10).status_code == 404


def test_a_conversation_on_invocations_belongs_to_the_identity(
    guarded: ServerProcess, scripted: ServerProcess
) -> None:
    mark = marker()
    conversation = {"conversation_id": f"conv-{mark}"}
    first = ask(guarded, f"alice-{mark} speaking", bearer(ALICE), context=conversation)
    assert first.status_code == 200
    claimed = {**conversation, "user_id": "alice"}
    second = ask(guarded, f"bob-{mark} here", bearer(BOB, **{"x-user-id": "alice"}), context=claimed)
    assert second.status_code == 200
    recorded = httpx.get(f"{scripted.url}/scripted/requests", timeout=10).json()
    bobs = [r for r in recorded if any(f"bob-{mark}" in m["text"] for m in r["messages"])]
    assert bobs, "the model never saw Bob's turn"
    assert not any(f"alice-{mark}" in m["text"] for r in bobs for m in r["messages"]), "Bob saw Alice's turn"
    third = ask(guarded, f"alice-{mark} again", bearer(ALICE), context=conversation)
    assert third.status_code == 200
    alices = [r for r in httpx.get(f"{scripted.url}/scripted/requests", timeout=10).json()
              if any(f"alice-{mark} again" in m["text"] for m in r["messages"])]  # fmt: skip
    assert any(f"alice-{mark} speaking" in m["text"] for r in alices for m in r["messages"])


def test_a_malformed_key_file_keeps_the_last_good_keys(guarded: ServerProcess, key_file: Path) -> None:
    """A key file rewritten with a bad entry (a Secret half-edited, say) is not read: the keys it
    had keep working, every request is answered, and the log says why, once."""
    original = key_file.read_text()
    key_file.write_text(original + "dave:\n")  # a name without a key
    try:
        for _ in range(3):
            reply = ask(guarded, "still in?", bearer(CAROL))
            assert reply.status_code == 200, reply.text
        assert ask(guarded, "hi", bearer("dave:")).status_code == 401
        warnings = [line for line in guarded.log_text().splitlines() if "is not valid" in line]
        assert len(warnings) == 1 and "keeping its last good keys" in warnings[0]
    finally:
        key_file.write_text(original)
    assert ask(guarded, "hi", bearer(CAROL)).status_code == 200
