"""The A2A endpoint's admission against a caller's limits, on the endpoint itself (an ASGI app,
through httpx's transport): a message that runs the agent is counted, a state store that is down
is a 503 as a JSON-RPC error naming no URL, and a call that runs nothing is never counted."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from agentship.errors import StateError
from agentship.server.core.admission import Admission
from agentship.server.protocols.a2a.routes import _Endpoint, runs_agent
from agentship.server.settings import ServerSettings


class DownStore:
    def __init__(self) -> None:
        self.asked = 0

    async def admit_scope(self, scope: Any) -> None:
        self.asked += 1
        raise StateError("the state store is unreachable (OperationalError)")


def call(method: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}


@pytest.mark.parametrize(
    ("body", "counted"),
    [
        (b'{"method": "SendMessage"}', True),
        (b'{"method": "message/stream"}', True),
        (b'[{"method": "GetTask"}, {"method": "SendStreamingMessage"}]', True),
        (b'{"method": "GetTask"}', False),
        (b'{"method": "tasks/cancel"}', False),
        (b"not json", False),
        (b"[1, 2]", False),
    ],
)
def test_only_the_methods_that_run_the_agent_are_counted(body: bytes, counted: bool) -> None:
    assert runs_agent(body) is counted


def test_a_store_down_while_counting_is_a_503_json_rpc_error() -> None:
    down = DownStore()
    services = SimpleNamespace(
        limits=down, settings=ServerSettings(model_uri="models:/m/1"), admission=Admission(4, 1)
    )
    endpoint = _Endpoint(services, dispatcher=None)  # type: ignore[arg-type]

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=endpoint)
        async with httpx.AsyncClient(transport=transport, base_url="http://a2a") as http:
            return await http.post("/", json=call("SendMessage"))

    reply = asyncio.run(send())
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "1"
    assert reply.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": -32000,
            "message": "the state store is unreachable (OperationalError)",
            "data": {"code": "state_unavailable"},
        },
    }
    assert down.asked == 1 and services.admission.in_flight == 0
