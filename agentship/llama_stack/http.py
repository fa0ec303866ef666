"""HTTP to a Llama Stack / OGX (or any OpenAI-compatible) server: one client, one retry policy.

Every call goes through one ``openai.AsyncOpenAI`` client: the Agents SDK's models use it for
chat completions and responses, and :class:`ServerHTTP` uses its generic ``get``/``post``/
``delete`` for the routes the SDK has no method for (the Agents API, routes, vector stores).
So every upstream failure is an ``openai`` exception, classified once by
:func:`agentship.upstream.classify`.

Retries live in the transport (:class:`RetryTransport`), not in the client: a request that
never reached the server (connection refused or timed out while connecting) is sent again,
whatever its method; a read error, a timeout or an error status after that is retried only for
idempotent methods. A POST may have reached the server: sending it again could duplicate an
agent, a session, or a turn and its server-side tool runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2  # the HTTP library openai 3.x is built on
import openai

from agentship.errors import BackendError
from agentship.upstream import Upstream, classify

_logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout)


class RetryTransport(httpx2.AsyncBaseTransport):
    """Retries what is safe to retry (see the module docstring), with a short backoff."""

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        max_retries: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._inner = inner
        self._max_retries = max_retries
        self._sleep = sleep

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        idempotent = request.method in IDEMPOTENT
        attempt = 0
        while True:
            try:
                response = await self._inner.handle_async_request(request)
            except _NOT_SENT:
                if attempt >= self._max_retries:
                    raise
            except httpx2.TransportError:
                if not idempotent or attempt >= self._max_retries:
                    raise
            else:
                retry = idempotent and response.status_code in RETRY_STATUSES
                if not retry or attempt >= self._max_retries:
                    return response
                await response.aclose()
            attempt += 1
            _logger.info("retrying %s %s (attempt %d)", request.method, request.url, attempt + 1)
            await self._sleep(min(2.0, 0.25 * 2**attempt))

    async def aclose(self) -> None:
        await self._inner.aclose()


class ServerHTTP:
    """JSON and SSE calls to one server; ``client`` is the shared ``openai`` client."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout_s: float,
        max_retries: int,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        inner = transport or httpx2.AsyncHTTPTransport(
            limits=httpx2.Limits(max_connections=512, max_keepalive_connections=64)
        )
        self._http = httpx2.AsyncClient(
            transport=RetryTransport(inner, max_retries),
            timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        )
        self.client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=api_key or "none",
            max_retries=0,  # the transport retries; the openai client would retry POSTs too
            timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            http_client=self._http,
        )
        self.upstream = Upstream("the Llama Stack server", timeout_s)

    def openai_client(self, prefix: str) -> openai.AsyncOpenAI:
        """The shared client, rooted at ``prefix`` (``/v1`` or ``/v1/openai/v1``)."""
        return self.client.with_options(base_url=self.base_url + prefix)

    def mapped(self, exc: BaseException, upstream: Upstream | None = None) -> BaseException:
        """The package error for a failed call, logged with its operator detail."""
        error = classify(exc, upstream or self.upstream)
        if isinstance(error, BackendError):
            _logger.warning("%s (%s)", error.message, error.detail)
        return error

    async def _json(self, call: Awaitable[httpx2.Response]) -> Any:
        try:
            response = await call
        except openai.APIError as exc:
            raise self.mapped(exc) from exc
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise BackendError("the Llama Stack server sent a malformed response", repr(exc)) from exc

    async def get(self, path: str) -> Any:
        return await self._json(self.client.get(path, cast_to=httpx2.Response))

    async def post(self, path: str, body: Any) -> Any:
        return await self._json(self.client.post(path, body=body, cast_to=httpx2.Response))

    async def delete(self, path: str) -> None:
        await self._json(self.client.delete(path, cast_to=httpx2.Response))

    async def stream(self, path: str, body: Any) -> AsyncIterator[dict[str, Any]]:
        """POST and yield each server-sent event's JSON payload as it arrives."""
        try:
            stream = await self.client.post(
                path, body=body, cast_to=object, stream=True, stream_cls=openai.AsyncStream[object]
            )
            async with stream:
                async for payload in stream:
                    if not isinstance(payload, dict):
                        raise BackendError("malformed event in the server's stream", repr(payload)[:200])
                    yield payload
        except openai.APIError as exc:
            raise self.mapped(exc) from exc
        except json.JSONDecodeError as exc:
            raise BackendError("malformed event in the server's stream", str(exc)) from exc

    async def probe(self, path: str) -> int:
        """The status of ``GET path``: 0 when the server cannot be reached."""
        try:
            await self.client.get(path, cast_to=httpx2.Response)
        except openai.APIStatusError as exc:
            return exc.status_code
        except openai.APIError:
            return 0
        return 200

    async def aclose(self) -> None:
        await self.client.close()
