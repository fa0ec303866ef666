"""Exceptions to HTTP answers in the OpenAI error shape.

``{"error": {"message": str, "type": str, "param": str | null, "code": str | null}}``, as
api.openai.com sends it. Never a traceback, never an internal URL or an upstream body: backend
errors carry a client-safe ``message`` (their ``detail`` was logged where they were raised), and
unknown failures are logged here and answered with a generic message.

Upstream failures, by class:

====================================  ======  ==========================
the model backend ...                 status  ``error.code``
====================================  ======  ==========================
rejected our credentials (401, 403)   502     ``upstream_auth_failed``
rate limited us (429)                 503     ``upstream_rate_limited`` (+ ``Retry-After``)
rejected the request (400, 404, …)    400     ``upstream_rejected_request``
failed (other statuses, malformed)    502     ``upstream_error``
is unreachable                        503     ``upstream_unavailable``
did not answer in time                504     ``upstream_timeout``
====================================  ======  ==========================

The whole request outrunning the server's own timeout is a 504 with code ``timeout``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from mlflow.exceptions import MlflowException
from pydantic import BaseModel

from agentship.errors import (
    CLIENT_FAULT_STATUSES,
    AgentRunError,
    BackendError,
    BackendStatusError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
    GuardrailTriggeredError,
    InvalidRequestError,
    SchemaTooNewError,
    StateError,
    TurnInterruptedError,
    TurnRejectedError,
)

_logger = logging.getLogger("agentship.server")


class ErrorDetail(BaseModel):
    message: str
    """What went wrong, safe to show."""
    type: str
    """The kind of error (``invalid_request_error``, ``server_error``, ``upstream_error``, …)."""
    param: str | None
    """The request parameter at fault, if one is."""
    code: str | None
    """A specific code (``not_ready``, ``upstream_timeout``, …), if there is one."""


class ErrorBody(BaseModel):
    """Every error answer's body, as api.openai.com sends it."""

    error: ErrorDetail


@dataclass
class HttpError(Exception):
    """An HTTP error answer: status, OpenAI error ``type``, safe message and optional code."""

    status: int
    type: str
    message: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        detail = ErrorDetail(message=self.message, type=self.type, param=self.param, code=self.code)
        return ErrorBody(error=detail).model_dump()


def invalid(message: str, param: str | None = None, code: str | None = None) -> HttpError:
    return HttpError(400, "invalid_request_error", message, code=code, param=param)


def _status_error(exc: BackendStatusError, retry_after_s: int) -> HttpError:
    status = exc.status
    if status in (401, 403):
        return HttpError(502, "upstream_error", exc.message, code="upstream_auth_failed")
    if status == 429:
        wait = math.ceil(exc.retry_after) if exc.retry_after else retry_after_s
        return HttpError(
            503,
            "upstream_error",
            exc.message,
            code="upstream_rate_limited",
            headers={"Retry-After": str(wait)},
        )
    if status in CLIENT_FAULT_STATUSES:
        return HttpError(400, "invalid_request_error", exc.message, code="upstream_rejected_request")
    return HttpError(502, "upstream_error", exc.message, code="upstream_error")


def classify(exc: BaseException, retry_after_s: int = 1) -> HttpError:
    """The status, error type and safe message for an exception raised while serving."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, GuardrailTriggeredError):
        return HttpError(
            400, "guardrail_triggered", exc.message, code=f"{exc.kind}_guardrail", param=exc.guardrail
        )
    if isinstance(exc, InvalidRequestError):
        return invalid(exc.message)
    if isinstance(exc, TimeoutError):
        return HttpError(504, "timeout", "the request did not finish within the server's timeout", "timeout")
    if isinstance(exc, BackendTimeoutError):
        return HttpError(504, "upstream_error", exc.message, code="upstream_timeout")
    if isinstance(exc, BackendUnavailableError):
        return HttpError(503, "upstream_error", exc.message, code="upstream_unavailable")
    if isinstance(exc, BackendStatusError):
        return _status_error(exc, retry_after_s)
    if isinstance(exc, BackendError):
        return HttpError(502, "upstream_error", exc.message, code="upstream_error")
    if isinstance(exc, TurnInterruptedError):
        code = "turn_interrupted" if exc.mode == "interrupt" else "turn_rolled_back"
        return HttpError(409, "invalid_request_error", exc.message, code=code)
    if isinstance(exc, TurnRejectedError):
        headers = {"Retry-After": str(retry_after_s)}
        return HttpError(409, "invalid_request_error", exc.message, code="conversation_busy", headers=headers)
    if isinstance(exc, SchemaTooNewError):
        return HttpError(500, "server_error", exc.message, code="state_schema_too_new")
    if isinstance(exc, StateError):
        headers = {"Retry-After": str(retry_after_s)}
        return HttpError(503, "server_error", exc.message, code="state_unavailable", headers=headers)
    if isinstance(exc, AgentRunError):
        return HttpError(500, "server_error", exc.message, code="agent_error")
    if isinstance(exc, ConfigError):
        return HttpError(500, "server_error", exc.message, code="configuration_error")
    if isinstance(exc, MlflowException) and exc.get_http_status_code() == 400:
        return invalid(exc.message)
    _logger.error("unexpected error while serving a request", exc_info=exc)
    return HttpError(500, "server_error", "internal error; see the server log", code="internal_error")
