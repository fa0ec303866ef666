"""Log-time validation without a backend.

``mlflow.pyfunc.log_model`` loads a ResponsesAgent and predicts on an input example, which
needs the model backend (and, for Llama Stack, would create an agent on the server). Inside
:func:`offline_validation` the package's agents answer that one validation call with a canned
response built from the config instead, so logging works whether or not the backend is up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_OFFLINE_VALIDATION: ContextVar[bool] = ContextVar("agentship_offline_validation", default=False)


@contextmanager
def offline_validation() -> Iterator[None]:
    token = _OFFLINE_VALIDATION.set(True)
    try:
        yield
    finally:
        _OFFLINE_VALIDATION.reset(token)


def in_offline_validation() -> bool:
    return _OFFLINE_VALIDATION.get()
