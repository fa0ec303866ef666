"""Exceptions to HTTP answers in the OpenAI error shape: ``{"error": {"type", "message", "code"}}``.

Never a traceback: unknown failures are logged here and answered with a generic message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mlflow.exceptions import MlflowException

from agentship.errors import (
    AgentRunError,
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
    InvalidRequestError,
)

_logger = logging.getLogger("serving")


@dataclass(frozen=True)
class HttpError:
    status: int
    type: str
    message: str

    def body(self) -> dict[str, dict[str, str | int]]:
        return {"error": {"type": self.type, "message": self.message, "code": self.status}}


def classify(exc: BaseException) -> HttpError:
    """The status, error type and safe message for an exception raised while serving."""
    if isinstance(exc, InvalidRequestError):
        return HttpError(400, "invalid_request_error", exc.message)
    if isinstance(exc, BackendTimeoutError | TimeoutError):
        message = exc.message if isinstance(exc, BackendTimeoutError) else "the request timed out"
        return HttpError(504, "timeout", message)
    if isinstance(exc, BackendUnavailableError):
        return HttpError(503, "upstream_unavailable", exc.message)
    if isinstance(exc, BackendError):
        return HttpError(502, "upstream_error", exc.message)
    if isinstance(exc, AgentRunError):
        return HttpError(500, "agent_error", exc.message)
    if isinstance(exc, ConfigError):
        return HttpError(500, "configuration_error", exc.message)
    if isinstance(exc, MlflowException) and exc.get_http_status_code() == 400:
        return HttpError(400, "invalid_request_error", exc.message)
    _logger.error("unexpected error while serving a request", exc_info=exc)
    return HttpError(500, "internal_error", "internal error; see the server log")
