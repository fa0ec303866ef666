"""The OpenAI Agents SDK's and the openai client's failures as the package's errors.

Messages are safe to show a client; the upstream's own words go in ``detail`` (logged where the
error is mapped). A tripped guardrail is the client's own doing: a 400 naming the guardrail.
"""

from __future__ import annotations

import json
from typing import Any

import openai
from agents.exceptions import (
    AgentsException,
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    ModelBehaviorError,
    OutputGuardrailTripwireTriggered,
)

from agentship.errors import (
    AgentRunError,
    BackendError,
    BackendStatusError,
    BackendTimeoutError,
    BackendUnavailableError,
    GuardrailTriggeredError,
    backend_status_message,
)


def _retry_after(response: Any) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except (AttributeError, TypeError, ValueError):
        return None


def _error_message(exc: openai.APIStatusError) -> str:
    try:
        body = exc.response.json()
        detail = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except (ValueError, json.JSONDecodeError):
        detail = None
    return str(detail or exc.message)


def _guardrail(
    exc: InputGuardrailTripwireTriggered | OutputGuardrailTripwireTriggered,
) -> GuardrailTriggeredError:
    kind = "input" if isinstance(exc, InputGuardrailTripwireTriggered) else "output"
    result = exc.guardrail_result
    name = result.guardrail.get_name()
    info = result.output.output_info
    why = f": {info}" if isinstance(info, str) and info else ""
    return GuardrailTriggeredError(f"the {kind} guardrail {name!r} tripped{why}", kind, name)


def classify(exc: BaseException, timeout_s: float, max_turns: int) -> BaseException:
    """The package error for an exception out of a run (others are returned unchanged)."""
    if isinstance(exc, (InputGuardrailTripwireTriggered, OutputGuardrailTripwireTriggered)):
        return _guardrail(exc)
    if isinstance(exc, openai.APITimeoutError):
        return BackendTimeoutError(f"the model backend did not answer within {timeout_s:g}s", str(exc))
    if isinstance(exc, openai.APIConnectionError):
        return BackendUnavailableError("the model backend is unreachable", str(exc.__cause__ or exc))
    if isinstance(exc, openai.APIStatusError):
        return BackendStatusError(
            backend_status_message(exc.status_code),
            exc.status_code,
            detail=f"HTTP {exc.status_code}: {_error_message(exc)}",
            retry_after=_retry_after(exc.response),
        )
    if isinstance(exc, MaxTurnsExceeded):
        return AgentRunError(f"the agent did not finish within max_turns={max_turns}")
    if isinstance(exc, (ModelBehaviorError, ValueError, openai.APIError)):
        return BackendError("the model backend sent a malformed response", str(exc))
    if isinstance(exc, AgentsException):
        return AgentRunError(f"the agent run failed: {exc}")
    return exc
