"""A client for any A2A agent (kagent's, ADK's, ``agentship serve --a2a``), over the a2a-sdk.

:class:`A2AAgent` has the ``.ask``/``.stream`` of the other clients. The agent keeps the
conversation: the client sends only the new message, in the ``contextId`` the agent gave the
first answer (or the one it was given). The SDK's client is async; it runs on an
:class:`~agentship.bridge.AsyncBridge` loop, so the sync methods yield events as they arrive.

With an :class:`~agentship.client.exchange_log.ExchangeLogger`, each exchange is logged out of band:
tags ``a2a_url``, ``task_id``, ``context_id`` (and ``session_id`` = the context id), the
latency, answer length and tokens, and the question, answer and task JSON.

The reading of tasks is pure: :func:`fold` applies a stream's events to its task (the SDK's own
artifact rules: ``append`` adds parts, otherwise the artifact is replaced), :func:`task_answer`
and :func:`task_usage` read the answer and the token usage (``agentship_usage`` from our
server; kagent's and ADK's ``usage_metadata`` on artifacts).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.server.tasks.task_manager import append_artifact_to_task
from a2a.types.a2a_pb2 import (
    AgentCard,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)
from google.protobuf.json_format import MessageToDict

from agentship.bridge import AsyncBridge
from agentship.client.base import auth_headers
from agentship.client.exchange_log import Exchange, ExchangeLogger

UNFINISHED = {TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_REJECTED}
_USAGE_KEYS = ("agentship_usage",)
_ADK_USAGE_KEYS = ("kagent_usage_metadata", "adk_usage_metadata")


class A2ATaskError(RuntimeError):
    """The agent's task ended failed, cancelled or rejected; ``task`` is its JSON."""

    def __init__(self, message: str, task: dict[str, Any]) -> None:
        super().__init__(message)
        self.task = task


# -- reading tasks (pure) ---------------------------------------------------------------------
def fold(task: Task, event: StreamResponse) -> Task:
    """``task`` with one stream event applied (a ``message`` answer becomes its status message)."""
    if event.HasField("task"):
        task.CopyFrom(event.task)
    elif event.HasField("message"):
        task.context_id = task.context_id or event.message.context_id
        task.status.state = TaskState.TASK_STATE_COMPLETED
        task.status.message.CopyFrom(event.message)
    elif event.HasField("status_update"):
        update = event.status_update
        task.id, task.context_id = task.id or update.task_id, task.context_id or update.context_id
        task.status.CopyFrom(update.status)
        task.metadata.MergeFrom(update.metadata)
    elif event.HasField("artifact_update"):
        append_artifact_to_task(task, event.artifact_update)
    return task


def _text(parts: list[dict[str, Any]]) -> str:
    return "".join(str(p["text"]) for p in parts if "text" in p)


def task_answer(task: dict[str, Any]) -> str:
    """The text of the task's last artifact with text; else its status message's text."""
    texts = [_text(a.get("parts", [])) for a in task.get("artifacts", [])]
    texts = [t for t in texts if t]
    if texts:
        return texts[-1]
    return _text(task.get("status", {}).get("message", {}).get("parts", []))


def task_usage(task: dict[str, Any]) -> dict[str, Any] | None:
    """Token usage in the Responses shape (``input_tokens``, ``output_tokens``, ``total_tokens``)."""
    metadata = task.get("metadata", {})
    for key in _USAGE_KEYS:
        if isinstance(metadata.get(key), dict):
            return dict(metadata[key])
    for artifact in reversed(task.get("artifacts", [])):
        for key in _ADK_USAGE_KEYS:
            adk = artifact.get("metadata", {}).get(key)
            if isinstance(adk, dict):
                return {
                    "input_tokens": adk.get("promptTokenCount"),
                    "output_tokens": adk.get("candidatesTokenCount"),
                    "total_tokens": adk.get("totalTokenCount"),
                }
    return None


def tool_activity(task: dict[str, Any]) -> list[tuple[str, Any]]:
    """(kind, data) of the task's tool calls and results (kagent's and ADK's data parts)."""
    found = []
    for artifact in task.get("artifacts", []):
        for part in artifact.get("parts", []):
            metadata = part.get("metadata", {})
            kind = metadata.get("kagent_type") or metadata.get("adk_type")
            if "data" in part and kind in ("function_call", "function_response"):
                found.append((str(kind), part["data"]))
    return found


# -- the client -------------------------------------------------------------------------------
class A2AAgent:
    """An A2A agent at ``url`` (its agent card is read from ``url``), with ``.ask``/``.stream``."""

    def __init__(
        self,
        url: str,
        context_id: str | None = None,
        logger: ExchangeLogger | None = None,
        timeout: float = 300,
        user_id: str | None = None,
        api_key: str | None = None,
    ) -> None:
        """``api_key`` (else ``$AGENTSHIP_API_KEY``) is sent as a bearer key; ``user_id`` as
        ``x-user-id``, the header a trusted gateway names the user in."""
        self.url = url.rstrip("/")
        self.context_id = context_id
        self.logger = logger
        self.user_id = user_id
        self.history: list[dict[str, Any]] = []
        self.last_task: dict[str, Any] | None = None
        self._bridge = AsyncBridge(name="a2a-client")
        headers = {**auth_headers(api_key), **({"x-user-id": user_id} if user_id else {})}
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers)
        try:
            self.card: AgentCard = self._bridge.call(self._card)
        except BaseException:
            self.close()
            raise
        self.agent = {"name": self.card.name, "model": "unknown", "tools_count": len(self.card.skills)}

    async def _card(self) -> AgentCard:
        return await A2ACardResolver(self._http, self.url).get_agent_card()

    def _client(self, streaming: bool) -> Client:
        return ClientFactory(ClientConfig(streaming=streaming, httpx_client=self._http)).create(self.card)

    def _request(self, question: str) -> SendMessageRequest:
        message = Message(
            role=Role.ROLE_USER,
            message_id=uuid.uuid4().hex,
            parts=[Part(text=question)],
            context_id=self.context_id or "",
        )
        return SendMessageRequest(message=message)

    async def _events(self, question: str, streaming: bool) -> AsyncIterator[StreamResponse]:
        async for event in self._client(streaming).send_message(self._request(question)):
            yield event

    def stream(self, question: str) -> Iterator[dict[str, Any]]:
        """The agent's stream events (``task``, ``statusUpdate``, ``artifactUpdate``) as they arrive."""
        started, task = time.monotonic(), Task()
        for event in self._bridge.iterate(lambda: self._events(question, streaming=True)):
            fold(task, event)
            yield MessageToDict(event)
        self._finish(question, task, started)

    def ask(self, question: str) -> dict[str, Any]:
        """The agent's task once it has ended (its JSON, as on the wire)."""
        started, task = time.monotonic(), Task()
        for event in self._bridge.run(lambda: self._events(question, streaming=False)):
            fold(task, event)
        return self._finish(question, task, started)

    def _finish(self, question: str, task: Task, started: float) -> dict[str, Any]:
        latency_ms = (time.monotonic() - started) * 1000
        data = MessageToDict(task)
        self.last_task = data
        self.context_id = task.context_id or self.context_id
        answer = task_answer(data)
        if task.status.state in UNFINISHED:
            state = TaskState.Name(task.status.state).removeprefix("TASK_STATE_").lower()
            raise A2ATaskError(f"the agent's task ended {state}: {answer or 'no message'}", data)
        self.history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        if self.logger is not None:
            self.logger.submit(self._exchange(question, answer, data, latency_ms))
        return data

    def _exchange(self, question: str, answer: str, task: dict[str, Any], latency_ms: float) -> Exchange:
        context_id = self.context_id or ""
        return Exchange(
            question,
            answer,
            task,
            latency_ms,
            context_id,
            list(self.history),
            self.agent,
            tags={"a2a_url": self.url, "task_id": str(task.get("id", "")), "context_id": context_id},
            usage=task_usage(task),
            user_id=self.user_id,
        )

    def close(self) -> None:
        try:
            self._bridge.call(self._http.aclose)
        finally:
            self._bridge.close()
