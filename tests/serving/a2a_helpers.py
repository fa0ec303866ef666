"""Talking to an A2A agent the way an A2A client does: through the a2a-sdk's own client."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text
from a2a.types.a2a_pb2 import (
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    Task,
)
from a2a.utils.constants import PROTOCOL_VERSION_0_3


def user_message(text: str, context_id: str | None = None) -> Message:
    return Message(
        role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text=text)], context_id=context_id
    )


def send_request(text: str, context_id: str | None = None, **configuration: Any) -> SendMessageRequest:
    return SendMessageRequest(
        message=user_message(text, context_id), configuration=SendMessageConfiguration(**configuration)
    )


@asynccontextmanager
async def a2a_client(url: str, streaming: bool = True, version: str | None = None) -> AsyncIterator[Client]:
    """The SDK's client for the agent at ``url``; ``version="0.3"`` keeps only its 0.3 interface."""
    async with httpx.AsyncClient(timeout=60) as http:
        factory = ClientFactory(ClientConfig(streaming=streaming, httpx_client=http))
        card = await A2ACardResolver(http, url).get_agent_card()
        if version is not None:
            kept = [i for i in card.supported_interfaces if i.protocol_version == version]
            del card.supported_interfaces[:]
            card.supported_interfaces.extend(kept)
        client = factory.create(card)
        try:
            yield client
        finally:
            await client.close()


async def timed_events(client: Client, request: SendMessageRequest) -> list[tuple[float, StreamResponse]]:
    """(arrival time, event) of each event of one ``send_message``."""
    started = time.monotonic()
    return [(time.monotonic() - started, event) async for event in client.send_message(request)]


async def first_task(client: Client, request: SendMessageRequest) -> Task:
    """The task a non-streaming ``send_message`` answers with."""
    async for event in client.send_message(request):
        return event.task
    raise AssertionError("no answer")


def final_task(events: list[tuple[float, StreamResponse]]) -> Task:
    """The task as the stream leaves it: its first ``task`` event with every update applied."""
    from a2a.server.tasks.task_manager import append_artifact_to_task

    task = Task()
    for _, event in events:
        if event.HasField("task"):
            task.CopyFrom(event.task)
        elif event.HasField("status_update"):
            task.status.CopyFrom(event.status_update.status)
            task.metadata.MergeFrom(event.status_update.metadata)
        elif event.HasField("artifact_update"):
            append_artifact_to_task(task, event.artifact_update)
    return task


def answer(task: Task) -> str:
    """The text of the task's last artifact that has text."""
    texts = [get_artifact_text(a, "") for a in task.artifacts if get_artifact_text(a, "")]
    return texts[-1] if texts else ""


def rpc(url: str, method: str, params: Any, version: str = "1.0", **extra: Any) -> dict[str, Any]:
    """One raw JSON-RPC call (for what the SDK's client would never send)."""
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params, **extra}
    headers = {} if version == PROTOCOL_VERSION_0_3 else {"A2A-Version": version}
    reply = httpx.post(url, json=body, headers=headers, timeout=60)
    return dict(reply.json())
