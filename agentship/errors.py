"""The package's exceptions.

Every error is an :class:`mlflow.exceptions.MlflowException`, so that MLflow's scoring server
answers with the right HTTP status and a clear message instead of a traceback::

    AgentError                      base class (500)
    ├── ConfigError                 the model config or serve-time environment is wrong (400)
    ├── InvalidRequestError         the request cannot be run (400)
    ├── GuardrailTriggeredError     a guardrail refused the input or the answer (400)
    ├── AgentRunError               the agent stopped without an answer, e.g. max turns (500)
    ├── EvaluationFailedError       an evaluation stopped before it finished (500)
    ├── StateError                  the state store cannot be used (503)
    │   ├── SchemaTooNewError       its schema is newer than this agentship knows (500)
    │   └── StateConflictError      a write broke a constraint: a row it needs just went (503)
    ├── DoubleTextingError          a message met a running turn of its conversation (409)
    │   ├── TurnRejectedError       the policy ``reject`` refused the new message
    │   └── TurnInterruptedError    the running turn was stopped by a newer message
    └── BackendError                the model backend failed (503)
        ├── BackendUnavailableError it cannot be reached (503)
        ├── BackendTimeoutError     it did not answer in time (504)
        └── BackendStatusError      it answered with an error status (400 for its 4xx, else 503)

A backend error's ``message`` is safe to show a client: it names no internal URL and carries no
upstream body. What the operator needs (the endpoint, the upstream's own words) is in
``detail``, which is logged where the error is raised and never sent to a client.
"""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    DEADLINE_EXCEEDED,
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    RESOURCE_CONFLICT,
    TEMPORARILY_UNAVAILABLE,
)
from pydantic import ValidationError


class AgentError(MlflowException):
    """Base class of the package's errors."""

    code = INTERNAL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=self.code)


class ConfigError(AgentError):
    code = INVALID_PARAMETER_VALUE


class InvalidRequestError(AgentError):
    code = BAD_REQUEST


class GuardrailTriggeredError(AgentError):
    """A guardrail tripped: ``kind`` is "input" or "output", ``guardrail`` its name."""

    code = BAD_REQUEST

    def __init__(self, message: str, kind: str, guardrail: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.guardrail = guardrail


class AgentRunError(AgentError):
    code = INTERNAL_ERROR


class EvaluationFailedError(AgentError):
    """An evaluation stopped before it finished (its run is marked FAILED)."""


class StateError(AgentError):
    """The state store is unreachable or failed; the message names no URL or credential."""

    code = TEMPORARILY_UNAVAILABLE


class SchemaTooNewError(StateError):
    code = INTERNAL_ERROR


class StateConflictError(StateError):
    """A write broke one of the store's constraints, as a concurrent one changed what it relies
    on (a response's parent deleted as the response was saved); the caller may write again."""


class DoubleTextingError(AgentError):
    """A message met a running turn of its conversation, and the double-texting policy said
    what became of one of them (:mod:`agentship.state.double_texting`)."""

    code = RESOURCE_CONFLICT


class TurnRejectedError(DoubleTextingError):
    """The new message was refused (policy ``reject``): a turn of the conversation is running."""


class TurnInterruptedError(DoubleTextingError):
    """The running turn was stopped by a newer message: ``mode`` is ``interrupt`` (its partial
    output kept, as ``incomplete``) or ``rollback`` (the turn dropped)."""

    def __init__(self, message: str, mode: str) -> None:
        super().__init__(message)
        self.mode = mode


class BackendError(AgentError):
    code = TEMPORARILY_UNAVAILABLE

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class BackendUnavailableError(BackendError):
    code = TEMPORARILY_UNAVAILABLE


class BackendTimeoutError(BackendError):
    code = DEADLINE_EXCEEDED


class BackendStatusError(BackendError):
    """The backend answered ``status``; ``retry_after`` is its Retry-After (seconds), if any."""

    def __init__(
        self, message: str, status: int, detail: str | None = None, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        self.code = BAD_REQUEST if status in CLIENT_FAULT_STATUSES else TEMPORARILY_UNAVAILABLE
        super().__init__(message, detail)


CLIENT_FAULT_STATUSES = frozenset({400, 404, 413, 422})
"""Upstream statuses that mean the request itself was wrong (too long a conversation, say)."""


def backend_status_message(status: int) -> str:
    """The client-safe message for an upstream error status, by its class."""
    if status in (401, 403):
        return "the model backend refused the server's credentials; the operator must fix the key"
    if status == 429:
        return "the model backend is rate limiting this server; retry later"
    if status in CLIENT_FAULT_STATUSES:
        return (
            f"the model backend rejected the request as invalid (HTTP {status}); "
            "the conversation may be too long for the model, or an input is not supported"
        )
    return f"the model backend failed (HTTP {status})"


def invalid_config(exc: ValidationError, what: str) -> ConfigError:
    """A :class:`ConfigError` naming every bad field of a model config."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
    )
    return ConfigError(f"invalid {what} model config: {problems}")
