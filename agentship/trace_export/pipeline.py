"""A bounded queue of finished traces and the one thread that writes them, in batches.

Requests only append to the queue (:meth:`TracePipeline.offer`, O(1), never blocking); the
writer thread takes up to ``batch_size`` traces at a time and hands them to a :class:`Sink`.
A write that fails for a reason that may pass (the tracking server is down, slow, restarting;
a database is locked) is retried with a doubling backoff and the batch is kept; while it waits,
new traces keep queueing up to ``queue_size``, and past that each new trace is dropped and
counted. A write the server refuses outright (a 4xx) is split, so that one bad trace does not
take its batch with it, and what is still refused is counted as failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mlflow.entities import Trace
from mlflow.entities.model_registry import PromptVersion
from mlflow.exceptions import MlflowException

from agentship.trace_export.settings import ExportSettings

_logger = logging.getLogger(__name__)

_WARN_EVERY_S = 30.0


@dataclass(frozen=True)
class Finished:
    """A finished trace, as the exporter took it from MLflow's trace manager."""

    trace: Trace
    prompts: Sequence[PromptVersion] = ()


class Sink(Protocol):
    """Where batches go. ``write`` raises when the batch was not (entirely) written."""

    def write(self, batch: Sequence[Finished]) -> None: ...

    def describe(self) -> str: ...


class ExportListener(Protocol):
    """Told about the queue (for metrics). Called from the writer or a request thread."""

    def depth(self, traces: int) -> None: ...

    def dropped(self, traces: int) -> None: ...

    def exported(self, traces: int) -> None: ...


@dataclass
class ExportStats:
    """What the pipeline did since it started."""

    exported: int = 0
    dropped: int = 0
    """Not exported because the queue was full, or still waiting when shutdown ran out of time."""
    failed: int = 0
    """Refused by the tracking store (a 4xx): retrying would not help."""
    retries: int = 0
    waiting: int = 0
    last_error: str | None = field(default=None, repr=False)


def retryable(error: BaseException) -> bool:
    """Whether a failed write may succeed later: anything but a client error from the server.

    Pure. A 4xx other than 408 (timeout) and 429 (slow down) means the request itself is wrong.
    """
    if isinstance(error, MlflowException):
        status = error.get_http_status_code()
        return not (400 <= status < 500) or status in (408, 429)
    return True


def backoff(attempt: int, first_s: float, max_s: float) -> float:
    """The wait before retry ``attempt`` (1, 2, ...): doubling from ``first_s``, capped. Pure."""
    return float(min(max_s, first_s * 2 ** min(attempt - 1, 30)))


class TracePipeline:
    """The bounded queue and its writer thread (started at construction)."""

    def __init__(self, sink: Sink, settings: ExportSettings, listener: ExportListener | None = None) -> None:
        self.sink = sink
        self.settings = settings
        self._listener = listener
        self._queue: deque[Finished] = deque()
        self._in_batch = 0
        self._cond = threading.Condition()
        self._flush_wanted = False
        self._closing = False
        self._deadline = float("inf")
        self._stats = ExportStats()
        self._last_warning = {"drop": 0.0, "retry": 0.0}
        self._thread = threading.Thread(target=self._run, name="agentship-trace-export", daemon=True)
        self._thread.start()

    # -- request side -------------------------------------------------------------------------------
    def offer(self, finished: Finished) -> bool:
        """Queue a trace; False (and counted) when the queue is full or closed."""
        with self._cond:
            if self._closing or len(self._queue) + self._in_batch >= self.settings.queue_size:
                self._stats.dropped += 1
                warn = self._due("drop")
                accepted = False
            else:
                self._queue.append(finished)
                if len(self._queue) in (1, self.settings.batch_size):  # the first, and a full batch
                    self._cond.notify()
                return True
        if self._listener is not None:
            self._listener.dropped(1)
        if warn:
            _logger.warning(
                "trace export queue full (%d traces): dropping traces; %d dropped so far",
                self.settings.queue_size,
                self._stats.dropped,
            )
        return accepted

    # -- control -------------------------------------------------------------------------------------
    def stats(self) -> ExportStats:
        with self._cond:
            snapshot = ExportStats(**vars(self._stats))
            snapshot.waiting = len(self._queue) + self._in_batch
            return snapshot

    def flush(self, timeout_s: float) -> bool:
        """Write what is queued now; True when the queue emptied within ``timeout_s``."""
        end = time.monotonic() + timeout_s
        with self._cond:
            self._flush_wanted = True
            self._cond.notify_all()
            while self._queue or self._in_batch:
                left = end - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout_s: float | None = None) -> ExportStats:
        """Stop taking traces, write what is left within ``timeout_s``, count the rest as dropped."""
        budget = self.settings.shutdown_timeout_s if timeout_s is None else timeout_s
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + budget
            self._cond.notify_all()
        self._thread.join(budget + self.settings.timeout_s + 1.0)
        return self.stats()

    # -- writer thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._deliver(batch)
            except Exception:
                _logger.exception("trace export: a batch of %d traces was lost", len(batch))
                self._count(dropped=len(batch))
            finally:
                with self._cond:
                    self._in_batch = 0
                    depth = len(self._queue)
                    self._cond.notify_all()
                if self._listener is not None:
                    self._listener.depth(depth)

    def _next_batch(self) -> list[Finished] | None:
        """Wait for traces, then for a full batch, a flush, shutdown or ``interval_s``."""
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            due = time.monotonic() + self.settings.interval_s
            while len(self._queue) < self.settings.batch_size and not (self._flush_wanted or self._closing):
                left = due - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            take = min(len(self._queue), self.settings.batch_size)
            batch = [self._queue.popleft() for _ in range(take)]
            self._in_batch = take
            if not self._queue:
                self._flush_wanted = False
            return batch

    def _deliver(self, batch: list[Finished]) -> None:
        attempt = 0
        while True:
            try:
                self.sink.write(batch)
            except Exception as exc:  # noqa: BLE001 - classified below
                if not retryable(exc):
                    self._refused(batch, exc)
                    return
                attempt += 1
                if not self._wait_to_retry(batch, exc, attempt):
                    return
                continue
            self._count(exported=len(batch))
            return

    def _refused(self, batch: list[Finished], error: BaseException) -> None:
        if len(batch) > 1:
            for one in batch:
                self._deliver([one])
            return
        self._count(failed=1, error=error)
        _logger.warning(
            "trace export: the tracking store refused trace %s: %s", batch[0].trace.info.trace_id, error
        )

    def _wait_to_retry(self, batch: list[Finished], error: BaseException, attempt: int) -> bool:
        """Sleep before the next try; False when shutdown's time is up (the batch is dropped)."""
        delay = backoff(attempt, min(0.5, self.settings.max_backoff_s), self.settings.max_backoff_s)
        with self._cond:
            self._stats.retries += 1
            self._stats.last_error = f"{type(error).__name__}: {error}"
            if time.monotonic() + delay > self._deadline:
                self._stats.dropped += len(batch)
                late = True
            else:
                late = False
                warn = self._due("retry")
        if late:
            if self._listener is not None:
                self._listener.dropped(len(batch))
            _logger.warning(
                "trace export: %d traces not exported before shutdown (%s: %s)",
                len(batch) + len(self._queue),
                type(error).__name__,
                error,
            )
            self._drop_rest()
            return False
        if self._listener is not None:
            self._listener.depth(len(batch) + len(self._queue))
        if warn:
            _logger.warning(
                "trace export to %s failed (%s: %s); retrying in %.1fs, %d traces waiting",
                self.sink.describe(),
                type(error).__name__,
                error,
                delay,
                len(batch) + len(self._queue),
            )
        with self._cond:
            was_closing = self._closing
            self._cond.wait_for(lambda: self._closing and not was_closing, delay)  # shutdown: try now
        return True

    def _drop_rest(self) -> None:
        with self._cond:
            rest = len(self._queue)
            self._queue.clear()
            self._stats.dropped += rest
        if rest and self._listener is not None:
            self._listener.dropped(rest)

    def _count(
        self, exported: int = 0, failed: int = 0, dropped: int = 0, error: BaseException | None = None
    ) -> None:
        with self._cond:
            self._stats.exported += exported
            self._stats.failed += failed
            self._stats.dropped += dropped
            if error is not None:
                self._stats.last_error = f"{type(error).__name__}: {error}"
        if self._listener is not None:
            if exported:
                self._listener.exported(exported)
            if dropped:
                self._listener.dropped(dropped)

    def _due(self, kind: str) -> bool:
        """Rate-limits a kind of warning to one per 30 s (call with the lock held)."""
        now = time.monotonic()
        if now - self._last_warning[kind] < _WARN_EVERY_S:
            return False
        self._last_warning[kind] = now
        return True
