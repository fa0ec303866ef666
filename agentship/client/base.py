"""What the clients share: the conversation a client keeps, the answer's text, the bearer key.

A client keeps the conversation's history and sends it whole each time, so it works against
any ResponsesAgent, stateless ones included. Its sync ``ask`` and ``stream`` record each exchange
and hand it to an :class:`~agentship.client.exchange_log.ExchangeLogger`, if it has one.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

from agentship.client.exchange_log import Exchange, ExchangeLogger
from agentship.events import reduce_mlflow

API_KEY_ENV = "AGENTSHIP_API_KEY"
"""The environment variable a client's bearer key comes from, when none is given."""


def auth_headers(api_key: str | None) -> dict[str, str]:
    """``Authorization: Bearer KEY`` for ``api_key``, else ``$AGENTSHIP_API_KEY``; none without either."""
    key = api_key or os.environ.get(API_KEY_ENV)
    return {"Authorization": f"Bearer {key}"} if key else {}


def answer_text(response: dict[str, Any]) -> str:
    """The text of a response's last message."""
    texts = [
        "".join(part.get("text", "") for part in item.get("content", []))
        for item in response.get("output", [])
        if item.get("type") == "message"
    ]
    return texts[-1] if texts else ""


class Conversation:
    """History kept by the client, sent whole each time (stateless agents need it)."""

    def __init__(self, conversation_id: str | None) -> None:
        self.id = conversation_id or f"session-{uuid.uuid4().hex[:12]}"
        self.explicit = conversation_id is not None
        self.history: list[dict[str, Any]] = []

    def request(self, question: str, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "input": [*self.history, {"role": "user", "content": question}],
            "stream": stream,
        }
        if self.explicit:
            body["context"] = {"conversation_id": self.id}
        return body

    def record(self, question: str, response: dict[str, Any]) -> None:
        self.history.append({"role": "user", "content": question})
        self.history.extend(item for item in response.get("output", []) if item.get("type") != "reasoning")


class AgentClient:
    """``ask`` and ``stream`` over a transport the subclass gives (:meth:`_complete`, :meth:`_events`)."""

    def __init__(
        self, conversation_id: str | None, logger: ExchangeLogger | None, agent: dict[str, Any]
    ) -> None:
        self.conversation = Conversation(conversation_id)
        self.logger = logger
        self.agent = agent

    def _events(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def stream(self, question: str) -> Iterator[dict[str, Any]]:
        """Yield the agent's stream events as they arrive; the exchange is recorded at the end."""
        started = time.monotonic()
        events: list[dict[str, Any]] = []
        for event in self._events(self.conversation.request(question, stream=True)):
            if event.get("type") == "error":
                raise RuntimeError(f"{event.get('code')}: {event.get('message')}")
            events.append(event)
            yield event
        self._finish(question, reduce_mlflow(events).model_dump(exclude_none=True), started)

    def ask(self, question: str) -> dict[str, Any]:
        started = time.monotonic()
        response = self._complete(self.conversation.request(question, stream=False))
        self._finish(question, response, started)
        return response

    def _finish(self, question: str, response: dict[str, Any], started: float) -> None:
        latency_ms = (time.monotonic() - started) * 1000
        self.conversation.record(question, response)
        if self.logger is not None:
            self.logger.submit(
                Exchange(
                    question,
                    answer_text(response),
                    response,
                    latency_ms,
                    self.conversation.id,
                    list(self.conversation.history),
                    self.agent,
                )
            )

    def close(self) -> None:
        """Release what the client holds (its connections, its loaded model)."""
