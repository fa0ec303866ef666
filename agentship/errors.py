"""The package's exceptions.

Every error is an :class:`mlflow.exceptions.MlflowException`, so that MLflow's scoring server
answers with the right HTTP status and a clear message instead of a traceback::

    AgentError                      base class (500)
    ├── ConfigError                 the model config or serve-time environment is wrong (400)
    ├── InvalidRequestError         the request cannot be run (400)
    ├── AgentRunError               the agent stopped without an answer, e.g. max turns (500)
    └── BackendError                the model backend failed (503)
        ├── BackendUnavailableError it cannot be reached (503)
        ├── BackendTimeoutError     it did not answer in time (504)
        └── BackendStatusError      it answered with an error status (400 for its 4xx, else 503)
"""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    DEADLINE_EXCEEDED,
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
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


class AgentRunError(AgentError):
    code = INTERNAL_ERROR


class BackendError(AgentError):
    code = TEMPORARILY_UNAVAILABLE


class BackendUnavailableError(BackendError):
    code = TEMPORARILY_UNAVAILABLE


class BackendTimeoutError(BackendError):
    code = DEADLINE_EXCEEDED


class BackendStatusError(BackendError):
    def __init__(self, message: str, status: int) -> None:
        self.status = status
        self.code = BAD_REQUEST if 400 <= status < 500 else TEMPORARILY_UNAVAILABLE
        super().__init__(message)


def invalid_config(exc: ValidationError, what: str) -> ConfigError:
    """A :class:`ConfigError` naming every bad field of a model config."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
    )
    return ConfigError(f"invalid {what} model config: {problems}")
