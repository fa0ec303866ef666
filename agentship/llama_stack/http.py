"""HTTP to a Llama Stack (or any OpenAI-compatible) server: retries, timeouts, SSE, errors.

One small async client over ``httpx`` rather than ``llama-stack-client``: the server's API
moved between releases (0.2 ``/v1/agents``, 0.3 ``/v1alpha/agents``, 0.4+ Responses), and a
single client that follows the server is simpler than one SDK version per server version.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from agentship.errors import (
    BackendError,
    BackendStatusError,
    BackendTimeoutError,
    BackendUnavailableError,
    backend_status_message,
)

_logger = logging.getLogger(__name__)

_RETRY_STATUSES = {429, 502, 503, 504}


def _detail(response: httpx.Response) -> str:
    """The server's own error message, from the shapes Llama Stack and OpenAI use."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if body.get("detail"):
            detail = body["detail"]
            return detail if isinstance(detail, str) else json.dumps(detail)[:500]
        if isinstance(error, str):
            return error
    return json.dumps(body)[:500]


def parse_sse_data(line: str) -> dict[str, Any] | None:
    """One SSE line to its JSON payload; None for other lines and the ``[DONE]`` marker."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if not data or data == "[DONE]":
        return None
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError as exc:
        raise BackendError("malformed event in the server's stream", repr(data[:200])) from exc
    if not isinstance(parsed, dict):
        raise BackendError("malformed event in the server's stream", repr(data[:200]))
    return parsed


class ServerHTTP:
    """Async JSON and SSE calls to one server, built once per event loop."""

    def __init__(self, base_url: str, api_key: str | None, timeout_s: float, max_retries: int) -> None:
        self.base_url = base_url.rstrip("/")
        self._max_retries = max_retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
        )
        self._timeout_s = timeout_s

    def _error(self, exc: Exception, path: str) -> Exception:
        """A client-safe error; what the operator needs goes to the log and ``detail``."""
        where = f"Llama Stack server {self.base_url}{path}"
        error: BackendError
        if isinstance(exc, httpx.TimeoutException):
            error = BackendTimeoutError(
                f"the Llama Stack server did not answer within {self._timeout_s:g}s", f"{where}: {exc!r}"
            )
        elif isinstance(exc, httpx.TransportError):
            error = BackendUnavailableError("the Llama Stack server is unreachable", f"{where}: {exc!r}")
        else:
            return exc
        _logger.warning("%s (%s)", error.message, error.detail)
        return error

    async def _send(self, method: str, path: str, body: Any, stream: bool) -> httpx.Response:
        """Send with bounded retries on connection failures and 429/5xx; map failures."""
        attempt = 0
        while True:
            try:
                request = self._client.build_request(method, path, json=body)
                response = await self._client.send(request, stream=stream)
            except httpx.HTTPError as exc:
                if attempt >= self._max_retries or isinstance(exc, httpx.TimeoutException):
                    raise self._error(exc, path) from exc
            else:
                if response.status_code < 400:
                    return response
                if stream:
                    await response.aread()
                    await response.aclose()
                if response.status_code not in _RETRY_STATUSES or attempt >= self._max_retries:
                    raise self._status_error(method, path, response)
            attempt += 1
            await asyncio.sleep(min(2.0, 0.25 * 2**attempt))

    def _status_error(self, method: str, path: str, response: httpx.Response) -> BackendStatusError:
        status = response.status_code
        detail = f"HTTP {status} to {method} {self.base_url}{path}: {_detail(response)}"
        _logger.warning("Llama Stack server error: %s", detail)
        try:
            retry_after: float | None = float(response.headers.get("retry-after", ""))
        except ValueError:
            retry_after = None
        return BackendStatusError(backend_status_message(status), status, detail, retry_after)

    async def get(self, path: str) -> Any:
        return (await self._send("GET", path, None, stream=False)).json()

    async def post(self, path: str, body: Any) -> Any:
        response = await self._send("POST", path, body, stream=False)
        return response.json() if response.content else None

    async def delete(self, path: str) -> None:
        await self._send("DELETE", path, None, stream=False)

    async def probe(self, path: str) -> int:
        """The status of ``GET path``, without retries: 0 when the server cannot be reached."""
        try:
            return (await self._client.get(path, timeout=min(self._timeout_s, 10.0))).status_code
        except httpx.HTTPError:
            return 0

    async def stream(self, path: str, body: Any) -> AsyncIterator[dict[str, Any]]:
        """POST and yield each SSE event's JSON payload as it arrives."""
        response = await self._send("POST", path, body, stream=True)
        try:
            async for line in response.aiter_lines():
                payload = parse_sse_data(line)
                if payload is not None:
                    yield payload
        except httpx.HTTPError as exc:
            raise self._error(exc, path) from exc
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()
