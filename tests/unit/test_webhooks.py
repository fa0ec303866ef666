"""Webhook settings, signatures and event bodies, checked against openai-python's own verifier
and types: what a receiver that follows OpenAI's documentation accepts."""

from __future__ import annotations

import base64
import json
import time

import pytest
from openai import InvalidWebhookSignatureError, OpenAI
from openai.types.webhooks import (
    ResponseCancelledWebhookEvent,
    ResponseCompletedWebhookEvent,
    ResponseFailedWebhookEvent,
    ResponseIncompleteWebhookEvent,
)

from agentship.server.webhooks.settings import WebhookConfigError, WebhookSettings, signature
from agentship.state.outbox import RESPONSE, response_event, response_rows
from agentship.state.records import StoredResponse

SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes....").decode()
CLIENT = OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
TYPES = {
    "completed": ResponseCompletedWebhookEvent,
    "failed": ResponseFailedWebhookEvent,
    "cancelled": ResponseCancelledWebhookEvent,
    "incomplete": ResponseIncompleteWebhookEvent,
}


def settings(**env: str) -> WebhookSettings:
    return WebhookSettings.from_environ(env)


def signed(keys: tuple[bytes, ...], body: bytes, webhook_id: str = "evt_1") -> dict[str, str]:
    stamp = int(time.time())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(keys, webhook_id, stamp, body),
    }


def record(status: str, background: bool = True) -> StoredResponse:
    return StoredResponse(
        id="resp_1", user_id="alice", status=status, request={}, input=[], history=[], background=background
    )


def test_settings_read_from_the_environment() -> None:
    read = settings(
        AGENTSHIP_WEBHOOK_URLS="https://a.example/hook, http://b.example/hook",
        AGENTSHIP_WEBHOOK_SECRET=f"{SECRET},plain-secret",
        AGENTSHIP_WEBHOOK_TIMEOUT_S="3",
        AGENTSHIP_WEBHOOK_RETRY_S="0.5",
        AGENTSHIP_WEBHOOK_MAX_ATTEMPTS="4",
    )
    assert read.urls == ("https://a.example/hook", "http://b.example/hook")
    assert read.keys == (b"a secret of thirty-two bytes....", b"plain-secret")
    assert (read.timeout_s, read.retry_s, read.max_attempts) == (3.0, 0.5, 4)
    assert [read.wait_s(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert read.wait_s(40) == 3600.0
    assert "secret" not in repr(read) and "thirty" not in repr(read)
    assert settings() == WebhookSettings(urls=(), keys=())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AGENTSHIP_WEBHOOK_URLS": "https://a.example"}, "AGENTSHIP_WEBHOOK_SECRET must be too"),
        (
            {"AGENTSHIP_WEBHOOK_URLS": "ftp://a.example", "AGENTSHIP_WEBHOOK_SECRET": "s"},
            "must be http(s)://",
        ),
        (
            {"AGENTSHIP_WEBHOOK_URLS": "https://a.example", "AGENTSHIP_WEBHOOK_SECRET": "whsec_!!"},
            "must be base64",
        ),
        (
            {
                "AGENTSHIP_WEBHOOK_URLS": "https://a.example",
                "AGENTSHIP_WEBHOOK_SECRET": "s",
                "AGENTSHIP_WEBHOOK_RETRY_S": "soon",
            },
            "AGENTSHIP_WEBHOOK_RETRY_S must be a number, not 'soon'",
        ),
        (
            {
                "AGENTSHIP_WEBHOOK_URLS": "https://a.example",
                "AGENTSHIP_WEBHOOK_SECRET": "s",
                "AGENTSHIP_WEBHOOK_MAX_ATTEMPTS": "0",
            },
            "AGENTSHIP_WEBHOOK_MAX_ATTEMPTS must be at least 1",
        ),
    ],
)
def test_unusable_settings_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(WebhookConfigError) as caught:
        settings(**env)
    assert message in str(caught.value)


def test_openai_python_verifies_the_signature_with_each_secret_of_a_rotation() -> None:
    body = b'{"id":"evt_1","object":"event"}'
    keys = (b"a secret of thirty-two bytes....", b"plain-secret")
    headers = signed(keys, body)
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (SECRET, "plain-secret"):
        CLIENT.webhooks.verify_signature(body, headers, secret=secret)
    with pytest.raises(InvalidWebhookSignatureError):
        CLIENT.webhooks.verify_signature(body, headers, secret="another")
    with pytest.raises(InvalidWebhookSignatureError):
        CLIENT.webhooks.verify_signature(body + b" ", headers, secret=SECRET)
    with pytest.raises(InvalidWebhookSignatureError):
        CLIENT.webhooks.verify_signature(body, {**headers, "webhook-id": "evt_2"}, secret=SECRET)


@pytest.mark.parametrize("status", sorted(TYPES))
def test_each_ending_is_openai_s_event_of_its_type(status: str) -> None:
    body = json.dumps(response_event(record(status), "evt_7", 1700000000.9)).encode()
    keys = (base64.b64decode(SECRET[6:]),)
    event = CLIENT.webhooks.unwrap(body, signed(keys, body, "evt_7"), secret=SECRET)
    assert isinstance(event, TYPES[status])
    assert event.model_dump() == {
        "id": "evt_7",
        "object": "event",
        "created_at": 1700000000,
        "type": f"response.{status}",
        "data": {"id": "resp_1"},
    }


def test_rows_announce_only_a_background_response_that_ended_to_each_url() -> None:
    urls = ("https://a.example/hook", "https://b.example/hook")
    rows = response_rows(record("completed"), urls, now=100.0, ttl_s=50.0)
    event = rows[0]["event_id"]
    assert event.startswith("evt_") and len(event) == 36
    payload = {
        "id": event,
        "object": "event",
        "created_at": 100,
        "type": "response.completed",
        "data": {"id": "resp_1"},
    }
    assert [{k: v for k, v in row.items() if k != "id"} for row in rows] == [
        {
            "event_id": event,
            "kind": RESPONSE,
            "subject": "resp_1",
            "destination": f"webhook-{i}",
            "url": url,
            "user_id": "alice",
            "payload": payload,
            "attempts": 0,
            "next_at": 0.0,
            "created_at": 100.0,
            "expires_at": 150.0,
        }
        for i, url in enumerate(urls)
    ]
    assert len({row["id"] for row in rows}) == 2
    assert response_rows(record("in_progress"), urls, 100.0, 50.0) == []
    assert response_rows(record("completed", background=False), urls, 100.0, 50.0) == []
    assert response_rows(record("completed"), (), 100.0, 50.0) == []
