"""A served agent over HTTP: ``agentship serve`` or ``mlflow models serve`` (``/invocations``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from agentship.client.base import AgentClient, auth_headers
from agentship.client.exchange_log import ExchangeLogger


class ServedAgent(AgentClient):
    """``api_key`` (else ``$AGENTSHIP_API_KEY``) is sent as a bearer key."""

    def __init__(
        self,
        url: str,
        conversation_id: str | None = None,
        logger: ExchangeLogger | None = None,
        timeout: float = 300,
        api_key: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout, headers=auth_headers(api_key))
        agent: dict[str, Any] = {}
        try:
            agent = self._http.get(f"{self.url}/version").json().get("agent") or {}
        except (httpx.HTTPError, ValueError, AttributeError):
            agent = {}  # mlflow models serve has no /version
        super().__init__(conversation_id, logger, agent)

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = self._http.post(f"{self.url}/invocations", json=body)
        if reply.status_code != 200:
            raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:1000]}")
        return dict(reply.json())

    def _events(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        with self._http.stream("POST", f"{self.url}/invocations", json=body) as reply:
            if reply.status_code != 200:
                raise RuntimeError(
                    f"HTTP {reply.status_code}: {reply.read().decode(errors='replace')[:1000]}"
                )
            for line in reply.iter_lines():
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    yield json.loads(line[5:])

    def close(self) -> None:
        self._http.close()
