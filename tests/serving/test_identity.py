"""One identity rule, on every route: the key's identity, else the gateway's ``x-user-id``, else the
request's own claim (``user``, ``context.user_id``, ``?user=``), else anonymous. A user reaches
only their own data, by any route and any field; ids are checked at the edge, before anything runs.

Against real ``python -m serving`` processes: the default server (no keys: a gateway in front of
it names the user), one with bearer keys, one with A2A, one whose agent pauses for approvals.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from google.protobuf.json_format import MessageToDict

from agentship.testing.processes import ServerProcess
from tests.e2e.helpers import run_log_agent, wait_for_traces
from tests.serving.a2a_helpers import user_message
from tests.serving.clients import marker
from tests.serving.conftest import TRACE_EXPERIMENT

pytestmark = pytest.mark.e2e

ALICE_KEY, BOB_KEY = "key-alice-7781", "key-bob-1204"


def gateway(user: str) -> dict[str, str]:
    return {"x-user-id": user}


def create(server: ServerProcess, text: str, headers: dict[str, str] | None = None, **body: object) -> str:
    reply = httpx.post(f"{server.url}/responses", json={"input": text, **body}, headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


def model_saw(scripted: ServerProcess, text: str) -> list[str]:
    """The messages of every model request whose messages contain ``text``, flattened."""
    recorded = httpx.get(f"{scripted.url}/scripted/requests", timeout=10).json()
    return [
        m["text"] for r in recorded if any(text in m["text"] for m in r["messages"]) for m in r["messages"]
    ]


# -- the stored-response routes ------------------------------------------------------------------
READS = {
    "get": lambda url, rid, **kw: httpx.get(f"{url}/responses/{rid}", **kw),
    "input_items": lambda url, rid, **kw: httpx.get(f"{url}/responses/{rid}/input_items", **kw),
    "stream": lambda url, rid, **kw: httpx.get(
        f"{url}/responses/{rid}", params={"stream": "true", **kw.pop("params", {})}, **kw
    ),
    "cancel": lambda url, rid, **kw: httpx.post(f"{url}/responses/{rid}/cancel", **kw),
}
"""Each route that names a stored response, and what its owner gets from it (cancel: 400, the
response is not a background one; the others: 200). Anyone else gets 404 from each."""
OWNER_STATUS = {"get": 200, "input_items": 200, "stream": 200, "cancel": 400}

CALLERS = {
    # who asks: (headers, query parameters), and whether the rule makes them Alice
    "gateway-alice": (gateway("alice"), {}, True),
    "claims-alice": ({}, {"user": "alice"}, True),
    "gateway-bob-claims-alice": (gateway("bob"), {"user": "alice"}, False),
    "anonymous": ({}, {}, False),
}


@pytest.fixture(scope="module")
def alices(serving: ServerProcess) -> dict[str, str]:
    """Alice's responses: one made through the gateway's header, one claimed in the body."""
    return {
        "gateway": create(serving, "alice through the gateway", gateway("alice")),
        "claim": create(serving, "alice by her own claim", user="alice"),
    }


@pytest.mark.parametrize("made", ["gateway", "claim"])
@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("route", list(READS))
def test_a_stored_response_is_reached_only_as_its_user(
    serving: ServerProcess, alices: dict[str, str], made: str, caller: str, route: str
) -> None:
    headers, params, is_alice = CALLERS[caller]
    reply = READS[route](serving.url, alices[made], headers=headers, params=params, timeout=30)
    assert reply.status_code == (OWNER_STATUS[route] if is_alice else 404), reply.text
    if not is_alice:
        assert reply.json()["error"] == {
            "message": f"Response with id {alices[made]!r} not found.",
            "type": "invalid_request_error",
            "param": "response_id",
            "code": None,
        }


@pytest.mark.parametrize("caller", list(CALLERS))
def test_a_response_is_continued_and_referenced_only_as_its_user(
    serving: ServerProcess, alices: dict[str, str], caller: str
) -> None:
    headers, params, is_alice = CALLERS[caller]
    body = {"input": "and then?", "previous_response_id": alices["claim"], **params}
    continued = httpx.post(f"{serving.url}/responses", json=body, headers=headers, timeout=60)
    assert continued.status_code == (200 if is_alice else 400), continued.text
    stored = httpx.get(
        f"{serving.url}/responses/{alices['claim']}", params={"user": "alice"}, timeout=10
    ).json()
    item = stored["output"][-1]["id"]
    body = {"input": [{"type": "item_reference", "id": item}, {"role": "user", "content": "so?"}], **params}
    referenced = httpx.post(f"{serving.url}/responses", json=body, headers=headers, timeout=60)
    assert referenced.status_code == (200 if is_alice else 400), referenced.text


def test_delete_is_only_the_owners(serving: ServerProcess) -> None:
    mine = create(serving, "delete me", user="carol")
    for headers, params in ((gateway("dave"), {"user": "carol"}), ({}, {})):
        reply = httpx.delete(f"{serving.url}/responses/{mine}", headers=headers, params=params, timeout=10)
        assert reply.status_code == 404
    assert (
        httpx.get(f"{serving.url}/responses/{mine}", params={"user": "carol"}, timeout=10).status_code == 200
    )
    deleted = httpx.delete(f"{serving.url}/responses/{mine}", params={"user": "carol"}, timeout=10)
    assert deleted.json() == {"id": mine, "object": "response", "deleted": True}


def test_the_gateways_header_beats_the_body_on_responses(serving: ServerProcess) -> None:
    rid = create(serving, "whose is it?", gateway("bob"), user="alice")
    assert httpx.get(f"{serving.url}/responses/{rid}", headers=gateway("bob"), timeout=10).status_code == 200
    assert (
        httpx.get(f"{serving.url}/responses/{rid}", params={"user": "alice"}, timeout=10).status_code == 404
    )


# -- /invocations -------------------------------------------------------------------------------------
def invoke(
    server: ServerProcess, text: str, context: dict[str, str], headers: dict[str, str] | None = None
) -> None:
    body = {"input": [{"role": "user", "content": text}], "context": context}
    reply = httpx.post(f"{server.url}/invocations", json=body, headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text


def test_a_conversation_on_invocations_is_the_rules_user(
    serving: ServerProcess, scripted: ServerProcess
) -> None:
    """The gateway's header beats the body's ``context.user_id``: a client that claims Alice's id
    behind a gateway that names Bob is in Bob's conversation, not Alice's."""
    mark = marker()
    conversation = f"conv-{mark}"
    invoke(serving, f"alice-{mark} first", {"conversation_id": conversation, "user_id": "alice"})
    invoke(
        serving, f"bob-{mark} claims", {"conversation_id": conversation, "user_id": "alice"}, gateway("bob")
    )
    assert not [m for m in model_saw(scripted, f"bob-{mark}") if f"alice-{mark}" in m]
    invoke(serving, f"anon-{mark} too", {"conversation_id": conversation})
    assert not [m for m in model_saw(scripted, f"anon-{mark}") if f"alice-{mark}" in m]
    invoke(serving, f"alice-{mark} again", {"conversation_id": conversation}, gateway("alice"))
    assert f"alice-{mark} first" in model_saw(scripted, f"alice-{mark} again")
    traces = wait_for_traces(TRACE_EXPERIMENT, lambda t: f"bob-{mark}" in json.dumps(t.data.request))
    bobs = next(t for t in traces if f"bob-{mark}" in json.dumps(t.data.request))
    assert bobs.info.trace_metadata["mlflow.trace.user"] == "bob"
    assert bobs.info.trace_metadata["mlflow.trace.session"] == conversation


@pytest.fixture(scope="module")
def approvals(start_serving: Callable[..., ServerProcess], scripted: ServerProcess) -> ServerProcess:
    logged = run_log_agent(
        "--agent", "openai-agents", "--config", "configs/openai_agents_approvals.yaml",
        "--registered-model-name", "identity-approvals", "--alias", "live",
    )  # fmt: skip
    assert logged.returncode == 0, logged.stderr
    return start_serving(
        scripted.url + "/v1", model="models:/identity-approvals@live", name="serving-identity-approvals"
    )


def test_only_the_rules_user_answers_a_pending_approval(approvals: ServerProcess) -> None:
    context = {"conversation_id": f"approve-{marker()}", "user_id": "alice"}
    body = {"input": [{"role": "user", "content": "Please send email to Bob"}], "context": context}
    paused = httpx.post(f"{approvals.url}/invocations", json=body, timeout=60).json()
    (ask,) = paused["output"]
    answer = {"type": "mcp_approval_response", "approval_request_id": ask["id"], "approve": True}
    stranger = httpx.post(
        f"{approvals.url}/invocations",
        json={"input": [answer], "context": context},
        headers=gateway("eve"),
        timeout=60,
    )
    assert stranger.status_code == 400
    assert (
        stranger.json()["error"]["message"]
        == "the approval answers no paused run of this user: it was answered already (or is being "
        "answered by another request right now), or it expired"
    )
    resumed = httpx.post(
        f"{approvals.url}/invocations", json={"input": [answer], "context": context}, timeout=60
    )
    assert resumed.status_code == 200 and resumed.json()["output"][1]["output"] == "Email sent to Bob."


# -- ids at the edge ------------------------------------------------------------------------------------
BAD = [
    pytest.param(
        {"x-user-id": "u" * 256},
        {},
        "the x-user-id header must be 1 to 255 characters long, not 256",
        id="long-header",
    ),
    pytest.param(
        {"x-user-id": "a\x01b"},
        {},
        "the x-user-id header must not contain control characters",
        id="control-header",
    ),
    pytest.param(
        {}, {"user": "a\nb"}, "the request's user must not contain control characters", id="control-user"
    ),
    pytest.param(
        {},
        {"user": "u" * 300},
        "the request's user must be 1 to 255 characters long, not 300",
        id="long-user",
    ),
    pytest.param(
        {},
        {"conversation": "c" * 10_000},
        "'conversation' must be an id of 1 to 255 characters",
        id="long-conversation",
    ),
]


@pytest.mark.parametrize(("headers", "fields", "message"), BAD)
def test_a_bad_id_is_a_400_naming_it_before_the_model_runs(
    serving: ServerProcess,
    scripted: ServerProcess,
    headers: dict[str, str],
    fields: dict[str, str],
    message: str,
) -> None:
    mark = marker()
    reply = httpx.post(
        f"{serving.url}/responses", json={"input": f"bad id {mark}", **fields}, headers=headers, timeout=30
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["message"] == message
    assert model_saw(scripted, mark) == []


def test_a_non_ascii_header_and_a_long_conversation_on_invocations_are_400s(
    serving: ServerProcess, scripted: ServerProcess
) -> None:
    mark = marker()
    body = {"input": [{"role": "user", "content": f"bad {mark}"}]}
    non_ascii = httpx.post(
        f"{serving.url}/invocations", json=body, headers=[("x-user-id", "jos\u00e9".encode())], timeout=30
    )
    assert non_ascii.status_code == 400
    assert (
        non_ascii.json()["error"]["message"]
        == "the x-user-id header must be ASCII (percent-encode other characters)"
    )
    long_conversation = {**body, "context": {"conversation_id": "c" * 10_000}}
    reply = httpx.post(f"{serving.url}/invocations", json=long_conversation, timeout=30)
    assert reply.status_code == 400
    assert (
        reply.json()["error"]["message"]
        == "'context.conversation_id' must be 1 to 255 characters long, not 10000"
    )
    assert model_saw(scripted, mark) == []


# -- keys ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed(start_serving: Callable[..., ServerProcess], scripted: ServerProcess) -> Iterator[ServerProcess]:
    yield start_serving(
        scripted.url + "/v1", "--a2a", name="serving-identity-keys",
        env={"AGENTSHIP_API_KEYS": f"alice:{ALICE_KEY}, bob:{BOB_KEY}"},
    )  # fmt: skip


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **extra}


@pytest.mark.parametrize("route", list(READS))
def test_with_keys_no_header_or_claim_reaches_another_keys_response(keyed: ServerProcess, route: str) -> None:
    rid = create(keyed, "alice's, by key", bearer(ALICE_KEY), user="bob")
    owner = READS[route](keyed.url, rid, headers=bearer(ALICE_KEY), timeout=30)
    assert owner.status_code == OWNER_STATUS[route], owner.text
    for headers, params in (
        (bearer(BOB_KEY, **{"x-user-id": "alice"}), {"user": "alice"}),
        (bearer(BOB_KEY), {}),
    ):
        reply = READS[route](keyed.url, rid, headers=headers, params=params, timeout=30)
        assert reply.status_code == 404, reply.text


# -- A2A ------------------------------------------------------------------------------------------------------
def send(server: ServerProcess, text: str, headers: dict[str, str], context_id: str | None = None) -> dict:
    message = MessageToDict(user_message(text, context_id))
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    reply = httpx.post(f"{server.url}/", json=body, headers={"A2A-Version": "1.0", **headers}, timeout=60)
    assert reply.status_code == 200, reply.text
    return dict(reply.json()["result"]["task"])


def get_task(server: ServerProcess, task_id: str, headers: dict[str, str]) -> dict:
    body = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}
    return dict(
        httpx.post(f"{server.url}/", json=body, headers={"A2A-Version": "1.0", **headers}, timeout=30).json()
    )


@pytest.mark.parametrize("keys", [False, True], ids=["gateway", "keys"])
def test_an_a2a_task_and_its_context_are_its_users(
    keys: bool, a2a_serving: ServerProcess, keyed: ServerProcess, scripted: ServerProcess
) -> None:
    server = keyed if keys else a2a_serving
    alice = bearer(ALICE_KEY) if keys else gateway("alice")
    bob = bearer(BOB_KEY, **{"x-user-id": "alice"}) if keys else gateway("bob")
    mark = marker()
    task = send(server, f"alice-{mark} over a2a", alice)
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert get_task(server, task["id"], alice)["result"]["id"] == task["id"]
    assert get_task(server, task["id"], bob)["error"]["code"] == -32001
    send(server, f"bob-{mark} in her context", bob, context_id=task["contextId"])
    assert not [m for m in model_saw(scripted, f"bob-{mark}") if f"alice-{mark}" in m]


def test_with_keys_the_agent_card_is_public_and_declares_bearer_auth(keyed: ServerProcess) -> None:
    """An A2A client finds out from the card how to authenticate: it is served without a key, and
    declares HTTP bearer auth as required (in the 1.0 fields and in 0.3's)."""
    reply = httpx.get(f"{keyed.url}/.well-known/agent-card.json", timeout=10)
    assert reply.status_code == 200
    card = reply.json()
    scheme = {"description": "an API key of this server", "scheme": "Bearer"}
    assert card["securitySchemes"] == {"bearer": {"httpAuthSecurityScheme": scheme, **scheme, "type": "http"}}
    assert card["securityRequirements"] == [{"schemes": {"bearer": {}}}]
    assert card["security"] == [{"bearer": []}]
    assert (
        httpx.post(
            f"{keyed.url}/", json={"jsonrpc": "2.0", "id": 1, "method": "GetTask"}, timeout=10
        ).status_code
        == 401
    )
