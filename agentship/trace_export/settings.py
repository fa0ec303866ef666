"""How traces leave the process: read from the environment at serve time. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agentship.errors import ConfigError

MODE = "AGENTSHIP_TRACE_EXPORT"
QUEUE_SIZE = "AGENTSHIP_TRACE_QUEUE_SIZE"
BATCH_SIZE = "AGENTSHIP_TRACE_BATCH_SIZE"
INTERVAL = "AGENTSHIP_TRACE_FLUSH_INTERVAL_S"
TIMEOUT = "AGENTSHIP_TRACE_EXPORT_TIMEOUT_S"
MAX_BACKOFF = "AGENTSHIP_TRACE_RETRY_MAX_S"
SHUTDOWN = "AGENTSHIP_TRACE_SHUTDOWN_TIMEOUT_S"

MODES = ("batched", "mlflow")


@dataclass(frozen=True)
class ExportSettings:
    """The batched exporter's limits.

    ``queue_size`` bounds the traces held in memory (waiting, or in a batch being retried);
    beyond it a new trace is dropped and counted. ``batch_size`` traces at most go in one write,
    at least every ``interval_s``. One write waits ``timeout_s`` at most; a failed write is
    retried with a backoff doubling up to ``max_backoff_s``, for as long as the server is away.
    At shutdown, what is left gets ``shutdown_timeout_s``.
    """

    queue_size: int = 2000
    batch_size: int = 100
    interval_s: float = 0.5
    timeout_s: float = 10.0
    max_backoff_s: float = 30.0
    shutdown_timeout_s: float = 10.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ExportSettings | None:
        """The settings, or None when ``AGENTSHIP_TRACE_EXPORT=mlflow`` keeps MLflow's exporter."""
        mode = environ.get(MODE, "batched").strip().lower() or "batched"
        if mode not in MODES:
            raise ConfigError(f"{MODE} must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "mlflow":
            return None
        return cls(
            queue_size=_number(environ, QUEUE_SIZE, int, cls.queue_size, 1),
            batch_size=_number(environ, BATCH_SIZE, int, cls.batch_size, 1),
            interval_s=_number(environ, INTERVAL, float, cls.interval_s, 0.001),
            timeout_s=_number(environ, TIMEOUT, float, cls.timeout_s, 0.01),
            max_backoff_s=_number(environ, MAX_BACKOFF, float, cls.max_backoff_s, 0.01),
            shutdown_timeout_s=_number(environ, SHUTDOWN, float, cls.shutdown_timeout_s, 0.0),
        )

    def describe(self) -> str:
        return (
            f"queue {self.queue_size}, batches of {self.batch_size} every {self.interval_s:g}s, "
            f"timeout {self.timeout_s:g}s"
        )


def _number[T: (int, float)](
    environ: Mapping[str, str], name: str, kind: type[T], default: T, minimum: float
) -> T:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, not {raw!r}")
    return value
