"""One mapping from a failed model-server call to the package's errors, for every backend.

Both backends reach their servers through the ``openai`` client (the OpenAI Agents SDK's models,
and the Llama Stack backend's own calls), so one function classifies what can go wrong:

* ``openai.APITimeoutError``       → :class:`BackendTimeoutError` ("… did not answer within Ns")
* ``openai.APIConnectionError``    → :class:`BackendUnavailableError` ("… is unreachable")
* ``openai.APIStatusError``        → :class:`BackendStatusError` (message by status class)
* ``openai.APIError`` in a stream  → :class:`BackendError` ("… reported an error")
* ``MaxTurnsExceeded``             → :class:`AgentRunError` (the caller's wording of the bound)
* malformed output                 → :class:`BackendError` ("… sent a malformed response")

Each ``message`` is safe for a client; the endpoint and the upstream's own words go to ``detail``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import openai
from agents.exceptions import AgentsException, MaxTurnsExceeded, ModelBehaviorError

from agentship.errors import (
    AgentRunError,
    BackendError,
    BackendStatusError,
    BackendTimeoutError,
    BackendUnavailableError,
    backend_status_message,
)


@dataclass(frozen=True)
class Upstream:
    """How to word errors of one backend: who it is, its timeout, what bounds a run."""

    who: str = "the model backend"
    timeout_s: float = 60.0
    max_turns_message: str = "the agent did not finish within its turn limit"


def retry_after(response: Any) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except (AttributeError, TypeError, ValueError):
        return None


def status_detail(exc: openai.APIStatusError) -> str:
    """The upstream's own error message, from the shapes OpenAI and Llama Stack use."""
    try:
        body = exc.response.json()
    except (ValueError, json.JSONDecodeError):
        return exc.message
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if body.get("detail"):
            detail = body["detail"]
            return detail if isinstance(detail, str) else json.dumps(detail)[:500]
    return exc.message


def _where(exc: openai.APIError) -> str:
    request = getattr(exc, "request", None)
    return f"{request.method} {request.url}" if request is not None else "?"


def classify(exc: BaseException, upstream: Upstream) -> BaseException:
    """The package error for ``exc``; anything unknown is returned unchanged."""
    who = upstream.who
    if isinstance(exc, openai.APITimeoutError):
        return BackendTimeoutError(
            f"{who} did not answer within {upstream.timeout_s:g}s", f"{_where(exc)}: {exc}"
        )
    if isinstance(exc, openai.APIConnectionError):
        return BackendUnavailableError(f"{who} is unreachable", f"{_where(exc)}: {exc.__cause__ or exc!r}")
    if isinstance(exc, openai.APIStatusError):
        return BackendStatusError(
            backend_status_message(exc.status_code),
            exc.status_code,
            detail=f"HTTP {exc.status_code} to {_where(exc)}: {status_detail(exc)}",
            retry_after=retry_after(exc.response),
        )
    if isinstance(exc, MaxTurnsExceeded):
        return AgentRunError(upstream.max_turns_message)
    if isinstance(exc, openai.APIError) and exc.body is not None:  # an error event in a stream
        return BackendError(f"{who} reported an error", f"{_where(exc)}: {exc.message}")
    if isinstance(exc, (ModelBehaviorError, ValueError, openai.APIError)):
        return BackendError(f"{who} sent a malformed response", str(exc))
    if isinstance(exc, AgentsException):
        return AgentRunError(f"the agent run failed: {exc}")
    return exc
