"""The ASGI app: ``create_app(settings)``. Starlette, uvicorn and sse-starlette.

Routes: ``POST /invocations`` (MLflow's request body; SSE when ``"stream": true``); the OpenAI
Responses API under ``/responses`` and ``/v1/responses`` (create, and for stored responses get,
delete, cancel, input items); ``GET /v1/models``, ``GET /health``, ``GET /ready``,
``GET /version``, ``GET /metrics`` (Prometheus, :mod:`serving._metrics`); with ``--a2a``, the A2A
agent card and JSON-RPC endpoint (:mod:`serving._a2a`). Anything else is answered in the OpenAI
error shape. With API keys configured, :mod:`serving._auth` checks a bearer key first.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mlflow
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import agentship
from agentship import trace_export
from agentship.compat import VERSION_KEY
from agentship.errors import ConfigError, StateError
from agentship.state import StateSettings, StateStore
from serving import _metrics, _otlp
from serving._auth import ApiKeys, BearerAuth, keys_from_environ
from serving._background import BackgroundRuns
from serving._errors import HttpError
from serving._faces import InvocationsFace, ResponsesFace
from serving._handlers import AgentEndpoint, ServerState, error_response
from serving._responses_api import StoredRoutes
from serving._runner import ModelRunner
from serving._settings import ServerSettings
from serving._stored import StoredResponses

_logger = logging.getLogger("serving")


def _resolve_experiment_once() -> None:
    """Resolve MLFLOW_EXPERIMENT_NAME once: left to MLflow, every trace looks it up again."""
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if name and not os.environ.get("MLFLOW_EXPERIMENT_ID"):
        try:
            mlflow.set_experiment(name)
        except Exception:
            _logger.warning(
                "could not resolve experiment %r; tracing continues with MLflow's default",
                name,
                exc_info=True,
            )


def _start_trace_export(state: ServerState) -> None:
    """Batched trace export into the tracking store (unless OTLP replaces it, or it is turned off)."""
    where = _otlp.describe(os.environ)
    if _otlp.replaces_store(os.environ):
        _logger.warning("traces: %s", where)
        return
    state.traces = trace_export.install(os.environ, listener=_metrics.TraceExportMetrics())
    if state.traces is not None:
        where = where.replace(
            "the MLflow tracking store", f"the MLflow tracking store, {state.traces.describe()}"
        )
    _logger.warning("traces: %s", where)


def _close_trace_export(traces: trace_export.TraceExport) -> None:
    stats = traces.close()
    lost = stats.dropped + stats.waiting
    _logger.warning(
        "traces: %d exported, %d dropped, %d refused by the store", stats.exported, lost, stats.failed
    )


async def _open_state(state: ServerState, face: ResponsesFace, stored: StoredRoutes) -> None:
    """The store behind /responses (and its background runs), if state is on."""
    settings = StateSettings.from_environ(os.environ)
    if settings is None:
        _logger.warning("state store: off (AGENTSHIP_STATE_URL=none)")
        return
    store = await StateStore.open(settings)
    background = BackgroundRuns(
        store,
        lambda: state.runner,
        timeout_s=state.settings.background_timeout_s,
        max_runs=state.settings.max_background_runs,
    )
    background.start()
    state.store, state.background = store, background
    face.stored = StoredResponses(store)
    stored.store, stored.background = store, background
    _logger.warning(
        "state store: %s (ttl %gs, %d items per conversation)",
        settings.describe(),
        settings.ttl_s,
        settings.max_items,
    )


async def _purge(store: StateStore, every_s: float = 600.0) -> None:
    """Retention: expired state goes, on every replica, now and then."""
    while True:
        try:
            await store.purge()
        except StateError:
            pass  # the store is down; try again next time
        await asyncio.sleep(every_s)


def _lifespan(state: ServerState, face: ResponsesFace, stored: StoredRoutes) -> Any:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _resolve_experiment_once()
        _start_trace_export(state)
        await _open_state(state, face, stored)
        purge = asyncio.create_task(_purge(state.store), name="server-state-purge") if state.store else None
        if state.runner is None:
            uri = state.settings.model_uri
            try:
                state.runner = await asyncio.to_thread(ModelRunner, uri)
            except Exception as exc:
                state.load_error = f"{type(exc).__name__}: {exc}"
                _logger.error("could not load %s: %s", uri, state.load_error)
                raise
            ready_after = time.monotonic() - state.started
            _logger.warning("serving %s (%s), ready after %.1fs", uri, state.runner.kind, ready_after)
        # What the start loaded (MLflow, the SDKs, the model) lives as long as the process: out of
        # the collector's sight, its full collections no longer walk it under load.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if purge is not None:
                purge.cancel()
            for close in state.on_close:
                await close()
            if state.background is not None:
                await state.background.close()
            if state.runner is not None:
                await asyncio.to_thread(state.runner.close)
                in_flight = state.admission.in_flight
                _logger.warning("stopped: %d requests in flight, model closed, traces flushed", in_flight)
            if state.traces is not None:
                await asyncio.to_thread(_close_trace_export, state.traces)
            if state.store is not None:
                await state.store.aclose()
            _metrics.worker_exited()

    return lifespan


class _Info:
    """The read-only routes."""

    def __init__(self, state: ServerState, model_name: str) -> None:
        self.state = state
        self.model_name = model_name

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        state = self.state
        if state.runner is None:
            return JSONResponse({"status": "loading", "error": state.load_error}, status_code=503)
        return JSONResponse(
            {
                "status": "ready",
                "model_uri": state.settings.model_uri,
                "pid": os.getpid(),
                "in_flight": state.admission.in_flight,
                "threads": sorted(t.name for t in threading.enumerate()),
                "tasks": sorted(t.get_name() for t in asyncio.all_tasks()),
                "agent_tasks": await state.runner.agent_tasks(),
                "agent": state.runner.health(),
            }
        )

    async def version(self, request: Request) -> Response:
        runner = self.state.runner
        logged_with = (getattr(runner.pyfunc.metadata, "metadata", None) or {}) if runner else {}
        return JSONResponse(
            {
                "agentship": agentship.__version__,
                "model_agentship": logged_with.get(VERSION_KEY),
                "mlflow": mlflow.__version__,
                "model_uri": self.state.settings.model_uri,
                "runner": runner.kind if runner else None,
                "agent": runner.agent_summary() if runner else None,
            }
        )

    async def models(self, request: Request) -> Response:
        model = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "agentship"}
        return JSONResponse({"object": "list", "data": [model]})


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods, in the OpenAI error shape."""
    assert isinstance(exc, HTTPException)
    message = f"Invalid URL ({request.method} {request.url.path})" if exc.status_code == 404 else exc.detail
    error = HttpError(exc.status_code, "invalid_request_error", message, headers=dict(exc.headers or {}))
    return error_response(error)


def _a2a_routes(state: ServerState) -> list[Route]:
    """The A2A card and JSON-RPC routes (``--a2a``; the optional ``a2a`` extra)."""
    try:
        from serving._a2a import a2a_routes
    except ImportError as exc:
        raise ConfigError("--a2a needs the A2A SDK: pip install 'agentship[a2a]'") from exc
    a2a = a2a_routes(state)
    state.on_close.append(a2a.aclose)
    return a2a.routes


def _middleware(routes: list[Route], keys: ApiKeys | None) -> list[Middleware]:
    """Metrics outermost (a 401 is counted too), then the key check, if keys are configured."""
    stack = [Middleware(_metrics.RequestMetrics, routes=routes)]
    if keys is not None:
        _logger.warning("authentication: on, bearer keys (%s)", keys.describe())
        stack.append(Middleware(BearerAuth, keys=keys))
    return stack


def create_app(
    settings: ServerSettings, runner: ModelRunner | None = None, keys: ApiKeys | None = None
) -> Starlette:
    """The app for one model; it loads the model at startup unless a ``runner`` is given.

    ``keys`` turns on bearer-key authentication; by default they come from the environment
    (``AGENTSHIP_API_KEYS``, ``AGENTSHIP_API_KEYS_FILE``), and without any it is off."""
    state = ServerState(settings, runner)
    model_name = settings.model_name or settings.model_uri
    face = ResponsesFace(model_name)
    invocations = AgentEndpoint(state, InvocationsFace())
    responses = AgentEndpoint(state, face)
    stored = StoredRoutes(None, None, face.frame)
    info = _Info(state, model_name)
    routes = [Route("/invocations", invocations, methods=["POST"])]
    for prefix in ("", "/v1"):
        routes += [
            Route(f"{prefix}/responses", responses, methods=["POST"]),
            Route(f"{prefix}/responses/{{response_id}}", stored.get, methods=["GET"]),
            Route(f"{prefix}/responses/{{response_id}}", stored.delete, methods=["DELETE"]),
            Route(f"{prefix}/responses/{{response_id}}/cancel", stored.cancel, methods=["POST"]),
            Route(f"{prefix}/responses/{{response_id}}/input_items", stored.input_items, methods=["GET"]),
        ]
    if settings.a2a:
        routes += _a2a_routes(state)
    routes += [
        Route("/v1/models", info.models, methods=["GET"]),
        Route("/health", info.health, methods=["GET"]),
        Route("/ready", info.ready, methods=["GET"]),
        Route("/version", info.version, methods=["GET"]),
        Route("/metrics", _metrics.metrics_route, methods=["GET"]),
    ]
    lifespan = _lifespan(state, face, stored)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
        middleware=_middleware(routes, keys if keys is not None else keys_from_environ()),
    )
    app.state.server = state
    return app


def app_from_env() -> Starlette:
    """The app factory uvicorn's workers call: settings come from ``SERVING_*`` variables."""
    return create_app(ServerSettings.from_env())
