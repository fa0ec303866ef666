"""What the routes are made from: the loaded model, admission, the state store and what runs on
it, trace export, the A2A handler. Built once, at startup, in order; closed in reverse.

:func:`running` is the server's lifespan. It opens each part on an ``AsyncExitStack``, so a start
that fails half-way (a model that does not load, a store that is down) closes what it had
opened, and nothing is left running. Background runs are swept for only once the model is
loaded: a replica never claims a run it cannot yet run.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import mlflow

from agentship import trace_export
from agentship.errors import ConfigError, StateError
from agentship.server.core.admission import Admission
from agentship.server.core.runner import ModelRunner
from agentship.server.http.idempotency import Idempotency
from agentship.server.http.quotas import Limiter
from agentship.server.observability import metrics, otlp
from agentship.server.protocols.responses.background.runs import BackgroundRuns, RunLimits
from agentship.server.protocols.responses.stored import StoredResponses
from agentship.server.settings import ServerSettings
from agentship.server.webhooks.dispatcher import Dispatcher, Headers
from agentship.server.webhooks.settings import NEEDS_STATE, WebhookSettings
from agentship.state import StateSettings, StateStore, double_texting
from agentship.state.double_texting import policy
from agentship.state.usage import Quota

if TYPE_CHECKING:
    from agentship.server.protocols.a2a.routes import A2AService

_logger = logging.getLogger("agentship.server")

PURGE_EVERY_S = 600.0


@dataclass
class Services:
    settings: ServerSettings
    runner: ModelRunner
    admission: Admission
    store: StateStore | None = None
    stored: StoredResponses | None = None
    """Stored responses (None when the state store is off)."""
    background: BackgroundRuns | None = None
    idempotency: Idempotency | None = None
    """Keyed requests (``Idempotency-Key``; None when the state store is off)."""
    tiers: Callable[[], Mapping[str, Quota]] | None = None
    """The limits tiers, as they are now (None: no limits configured)."""
    limits: Limiter | None = None
    """Per-key limits and token budgets (None when none are configured)."""
    traces: trace_export.TraceExport | None = None
    a2a: A2AService | None = None
    webhooks: Dispatcher | None = None
    """Delivers webhooks and A2A push notifications (None when neither is on)."""
    bearer_auth: bool = False
    """Whether requests need a bearer key (the A2A card declares it)."""
    started: float = field(default_factory=time.monotonic)

    @property
    def model_name(self) -> str:
        return self.settings.model_name or self.settings.model_uri

    def background_runs(self) -> BackgroundRuns:
        """The background runs (a protocol only asks for them with the store on)."""
        if self.background is None:
            raise RuntimeError("background runs need the state store")
        return self.background


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


def _start_traces(stack: AsyncExitStack) -> trace_export.TraceExport | None:
    """Batched trace export into the tracking store (unless OTLP replaces it, or it is off)."""
    where = otlp.describe(os.environ)
    if otlp.replaces_store(os.environ):
        _logger.warning("traces: %s", where)
        return None
    traces = trace_export.install(os.environ, listener=metrics.TraceExportMetrics())
    if traces is not None:
        where = where.replace("the MLflow tracking store", f"the MLflow tracking store, {traces.describe()}")
        stack.push_async_callback(asyncio.to_thread, _close_traces, traces)
    _logger.warning("traces: %s", where)
    return traces


def _close_traces(traces: trace_export.TraceExport) -> None:
    stats = traces.close()
    lost = stats.dropped + stats.waiting
    _logger.warning(
        "traces: %d exported, %d dropped, %d refused by the store", stats.exported, lost, stats.failed
    )


async def _load(settings: ServerSettings, started: float) -> ModelRunner:
    try:
        runner = await asyncio.to_thread(ModelRunner, settings.model_uri)
    except Exception as exc:
        _logger.error("could not load %s: %s: %s", settings.model_uri, type(exc).__name__, exc)
        raise
    ready_after = time.monotonic() - started
    _logger.warning("serving %s (%s), ready after %.1fs", settings.model_uri, runner.kind, ready_after)
    return runner


async def _purge(store: StateStore) -> None:
    """Retention: expired state goes, on every replica, now and then."""
    while True:
        try:
            await store.purge()
        except StateError:
            pass  # the store is down; try again next time
        await asyncio.sleep(PURGE_EVERY_S)


async def _open_state(services: Services, stack: AsyncExitStack) -> None:
    """The store behind ``/responses``, its background runs and its retention, if state is on."""
    settings = StateSettings.from_environ(os.environ)
    if settings is None:
        if services.tiers is not None:
            raise ConfigError(
                "limits tiers are configured, and they are counted in the state store, which is off "
                "(AGENTSHIP_STATE_URL=none)"
            )
        _logger.warning("state store: off (AGENTSHIP_STATE_URL=none)")
        return
    store = services.store = await StateStore.open(settings)
    stack.push_async_callback(store.aclose)
    services.stored = StoredResponses(store, conversations=services.runner.sessions_in_store)
    limits = RunLimits(
        timeout_s=services.settings.background_timeout_s, max_runs=services.settings.max_background_runs
    )
    background = services.background = BackgroundRuns(store, services.runner, limits)
    background.start()
    stack.push_async_callback(background.close)
    if services.tiers is not None:
        services.limits = Limiter(store.usage, services.tiers)
    keyed = services.idempotency = Idempotency(
        store, wait_s=services.settings.request_timeout_s, retry_after_s=services.settings.retry_after_s
    )
    stack.push_async_callback(keyed.close, services.settings.drain_timeout_s)
    purge = asyncio.create_task(_purge(store), name="server-state-purge")
    stack.callback(purge.cancel)
    _logger.warning(
        "state store: %s (ttl %gs, %d items per conversation)",
        settings.describe(),
        settings.ttl_s,
        settings.max_items,
    )


async def _start_webhooks(services: Services, stack: AsyncExitStack) -> Dispatcher | None:
    """This replica's dispatcher, when there is anything to deliver: background responses' ends
    to the webhook URLs, or A2A push notifications through the store."""
    settings = WebhookSettings.from_environ(os.environ)
    if services.store is None:
        if settings.urls:
            raise ConfigError(NEEDS_STATE)
        return None
    headers: dict[str, Headers] = {}
    if services.a2a is not None:
        from agentship.server.webhooks.a2a import OutboxPushSender
        from agentship.state.outbox import A2A

        if isinstance(services.a2a.push, OutboxPushSender):
            headers[A2A] = services.a2a.push.headers
    if not settings.urls and not headers:
        return None
    services.store.responses.webhook_urls = settings.urls
    dispatcher = Dispatcher(services.store.outbox, settings, headers)
    dispatcher.start()
    stack.push_async_callback(dispatcher.aclose)
    if settings.urls:
        _logger.warning("%s", settings.describe())
    return dispatcher


def _a2a(services: Services) -> A2AService:
    try:
        from agentship.server.protocols.a2a.routes import A2AService  # the optional a2a extra
    except ImportError as exc:
        raise ConfigError("--a2a needs the A2A SDK: pip install 'agentship-mlflow[a2a]'") from exc
    return A2AService(services)


@asynccontextmanager
async def running(
    settings: ServerSettings,
    runner: ModelRunner | None = None,
    bearer_auth: bool = False,
    tiers: Callable[[], Mapping[str, Quota]] | None = None,
) -> AsyncIterator[Services]:
    """The server's services, from its start to its stop."""
    started = time.monotonic()
    admission = Admission(settings.max_concurrency, settings.retry_after_s)
    double_texting.set_default(policy(settings.double_texting))
    async with AsyncExitStack() as stack:
        stack.callback(metrics.worker_exited)
        _resolve_experiment_once()
        traces = _start_traces(stack)
        if runner is None:
            runner = await _load(settings, started)
        stack.push_async_callback(asyncio.to_thread, runner.close)
        services = Services(settings, runner, admission, bearer_auth=bearer_auth, tiers=tiers)
        services.started, services.traces = started, traces
        await _open_state(services, stack)
        if settings.a2a:
            services.a2a = _a2a(services)
            stack.push_async_callback(services.a2a.aclose)
        services.webhooks = await _start_webhooks(services, stack)
        # What the start loaded (MLflow, the SDKs, the model) lives as long as the process: out of
        # the collector's sight, its full collections no longer walk it under load.
        gc.collect()
        gc.freeze()
        yield services
    _logger.warning("stopped: %d requests in flight, model closed, traces flushed", admission.in_flight)
