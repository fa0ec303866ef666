"""Prometheus metrics for ``GET /metrics``, with prometheus-client.

=============================================  =========  =============================================
metric                                         type       what
=============================================  =========  =============================================
``agentship_requests_total{route,status}``     counter    HTTP requests answered, by route and status
``agentship_request_duration_seconds{route}``  histogram  until the response (or stream) ended
``agentship_requests_in_flight{route}``        gauge      HTTP requests being answered
``agentship_time_to_first_event_seconds``      histogram  from a run's start to the agent's first event
``agentship_backend_errors_total{code}``       counter    model backend failures, by ``error.code``
``agentship_tokens_total{kind}``               counter    tokens the backend reported, input and output
``agentship_rate_limited_total{limit}``        counter    requests refused by a caller's limits
``agentship_limited_tokens_total{source}``     counter    tokens counted against budgets (reported, estimated)
``agentship_trace_export_queue_depth``         gauge      traces waiting to be exported
``agentship_trace_export_dropped_total``       counter    traces dropped (queue full, or shutdown ran out)
``agentship_trace_export_exported_total``      counter    traces written to the tracking store
=============================================  =========  =============================================

``route`` is the route's template (``/responses/{response_id}``), or ``other`` for an unknown
path, so the label set stays small. The trace-export metrics are fed by
:mod:`agentship.trace_export` through :class:`TraceExportMetrics`; with MLflow's own exporter
(``AGENTSHIP_TRACE_EXPORT=mlflow``) they stay at 0.

With several uvicorn workers (``-w N``) the metrics of every worker are summed through
prometheus-client's multiprocess mode: ``agentship serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at
a fresh directory before it starts the workers, and :func:`exposition` reads them all. The metric
objects live at module level, as that mode requires (one set per process).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentship.events import AgentEvent, Completed

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMEASURED = frozenset({"/metrics"})
"""Paths the request metrics leave out (the scraper's own requests)."""

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, float("inf"))
_FIRST_EVENT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, float("inf"))

REQUESTS = Counter("agentship_requests", "HTTP requests answered, by route and status.", ["route", "status"])
DURATION = Histogram(
    "agentship_request_duration_seconds",
    "Time until the response (or the whole stream) was sent, by route.",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "agentship_requests_in_flight",
    "HTTP requests being answered, by route.",
    ["route"],
    multiprocess_mode="livesum",
)
FIRST_EVENT = Histogram(
    "agentship_time_to_first_event_seconds",
    "Time from the start of an agent run to its first event (text, tool call, item).",
    buckets=_FIRST_EVENT_BUCKETS,
)
BACKEND_ERRORS = Counter(
    "agentship_backend_errors", "Model backend failures, by error.code (upstream_timeout, …).", ["code"]
)
TOKENS = Counter("agentship_tokens", "Tokens the model backend reported, by kind (input, output).", ["kind"])
RATE_LIMITED = Counter(
    "agentship_rate_limited",
    "Requests refused by a caller's limits, by the limit (requests per minute, tokens per day).",
    ["limit"],
)
SPENT = Counter(
    "agentship_limited_tokens",
    "Tokens counted against limited callers' budgets, by whether the backend reported them or "
    "they were estimated.",
    ["source"],
)
TRACE_QUEUE_DEPTH = Gauge(
    "agentship_trace_export_queue_depth", "Traces waiting to be exported.", multiprocess_mode="livesum"
)
TRACE_DROPS = Counter(
    "agentship_trace_export_dropped",
    "Traces dropped: the export queue was full, or shutdown ran out of time.",
)
TRACE_EXPORTED = Counter("agentship_trace_export_exported", "Traces written to the tracking store.")


# -- the hook for the trace exporter ----------------------------------------------------------------
def set_trace_queue_depth(depth: int) -> None:
    """The number of traces waiting in this process's export queue (called by the exporter)."""
    TRACE_QUEUE_DEPTH.set(depth)


def count_trace_drops(dropped: int = 1) -> None:
    """Count traces the exporter dropped because its queue was full."""
    if dropped > 0:
        TRACE_DROPS.inc(dropped)


class TraceExportMetrics:
    """The trace exporter's listener (:class:`agentship.trace_export.ExportListener`)."""

    def depth(self, traces: int) -> None:
        set_trace_queue_depth(traces)

    def dropped(self, traces: int) -> None:
        count_trace_drops(traces)

    def exported(self, traces: int) -> None:
        if traces > 0:
            TRACE_EXPORTED.inc(traces)


# -- agent runs -------------------------------------------------------------------------------------
def observe_first_event(seconds: float) -> None:
    FIRST_EVENT.observe(seconds)


def observe_backend_error(code: str | None) -> None:
    BACKEND_ERRORS.labels(code or "upstream_error").inc()


def observe_rate_limited(limit: str) -> None:
    RATE_LIMITED.labels(limit).inc()


def observe_spent(tokens: int, estimated: bool) -> None:
    if tokens > 0:
        SPENT.labels("estimated" if estimated else "reported").inc(tokens)


def observe_event(event: AgentEvent) -> None:
    """Count the tokens of a run's :class:`Completed` event (other events carry none)."""
    if isinstance(event, Completed) and event.usage:
        for kind in ("input", "output"):
            tokens = event.usage.get(f"{kind}_tokens")
            if isinstance(tokens, int) and tokens > 0:
                TOKENS.labels(kind).inc(tokens)


# -- HTTP requests ----------------------------------------------------------------------------------
def route_of(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The template of the route ``scope`` goes to (method aside), else ``other``."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return str(getattr(route, "path", "other"))
    return "other"


class RequestMetrics:
    """ASGI middleware: counts, times and tracks every HTTP request but the scraper's."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNMEASURED:  # the scraper's own requests
            await self.app(scope, receive, send)
            return
        route = route_of(self.routes, scope)
        status = 500  # unless the app answers: an exception before the response is a 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        in_flight = IN_FLIGHT.labels(route)
        in_flight.inc()
        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            in_flight.dec()
            DURATION.labels(route).observe(time.perf_counter() - started)
            REQUESTS.labels(route, str(status)).inc()


def exposition() -> tuple[bytes, str]:
    """This process's metrics, or every worker's in multiprocess mode, in Prometheus's format."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


async def metrics_route(request: Request) -> Response:
    body, content_type = exposition()
    return Response(body, media_type=content_type)


def worker_exited() -> None:
    """In multiprocess mode, drop this worker's live gauges (its counters stay in the sums)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())
