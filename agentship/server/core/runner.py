"""Runs any loaded ResponsesAgent as an async stream of events, without blocking the loop.

* The package's own agents stream natively: their async core runs on their own loop, and
  the server's loop awaits the events.
* Any other ResponsesAgent runs its sync ``predict_stream`` on a worker thread, handing each
  event over as it is produced; one that implements only ``predict`` is run through
  ``predict``, its answer replayed as the events a stream of it would have had.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mlflow
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import ResponsesAgentRequest, ResponsesAgentResponse

import agentship
from agentship.compat import VERSION_KEY, check_model_version
from agentship.errors import ConfigError
from agentship.events import AgentEvent, from_mlflow, from_response
from agentship.model_logging import agent_summary, logged_config
from agentship.responses_agent import AgentshipResponsesAgent
from agentship.server.core.requirements import warn_mismatches

_logger = logging.getLogger("agentship.server")

INBOX = 64
"""Events a worker thread may hand over before the request's run has taken them."""


def _streams(agent: Any) -> bool:
    """Whether the agent overrides ``predict_stream`` (MLflow's own raises NotImplementedError)."""
    return type(agent).predict_stream is not ResponsesAgent.predict_stream


def _check_version(pyfunc: Any, model_uri: str) -> None:
    """Refuse a model logged with an incompatible agentship; warn about a different one."""
    recorded = (getattr(pyfunc.metadata, "metadata", None) or {}).get(VERSION_KEY)
    verdict = check_model_version(recorded, agentship.__version__)
    if verdict.level == "fail":
        raise ConfigError(f"{model_uri}: {verdict.message}")
    if verdict.level == "warn":
        _logger.warning("%s: %s", model_uri, verdict.message)


def load(model_uri: str) -> Any:
    """The pyfunc model at ``model_uri``, with MLflow's warnings about its requirements and
    Python, from :mod:`~agentship.server.core.requirements` (the same verdicts, without the
    half second MLflow's check spends first on every installed package's file list)."""
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri)
    pyfunc = mlflow.pyfunc.load_model(local, suppress_warnings=True)
    flavor = pyfunc.metadata.flavors.get("python_function", {})
    warn_mismatches(local, flavor.get("python_version"))
    return pyfunc


class ModelRunner:
    def __init__(self, model_uri: str, max_threads: int = 64) -> None:
        self.model_uri = model_uri
        self.pyfunc = load(model_uri)
        raw = self.pyfunc.get_raw_model() if hasattr(self.pyfunc, "get_raw_model") else None
        if not isinstance(raw, ResponsesAgent):
            raise TypeError(f"{model_uri} is not a ResponsesAgent model")
        self.agent: Any = raw
        self.native = isinstance(raw, AgentshipResponsesAgent)
        self.streams = self.native or _streams(raw)
        self._threads = None if self.native else ThreadPoolExecutor(max_threads, thread_name_prefix="predict")
        if self.native:
            try:
                _check_version(self.pyfunc, model_uri)
            except ConfigError:
                self.close()
                raise

    def model_config(self) -> dict[str, Any]:
        """The model config recorded with the model (empty when it has none)."""
        return logged_config(self.pyfunc)

    def agent_summary(self) -> dict[str, Any]:
        """name, model and tools_count from the model config (for clients' exchange logs)."""
        return agent_summary(self.model_config())

    @property
    def kind(self) -> str:
        if self.native:
            return "native-async"
        return "threaded" if self.streams else "threaded-predict"

    def events(self, request: ResponsesAgentRequest, deltas: bool = True) -> AsyncGenerator[AgentEvent, None]:
        """The run's events; ``deltas=False`` lets the package's own agents skip model streaming."""
        if self.native:
            return self.agent.aevents(request, deltas=deltas)  # type: ignore[no-any-return]
        if not self.streams:
            return self._predicted(request)
        return self._threaded(request)

    async def _predicted(self, request: ResponsesAgentRequest) -> AsyncGenerator[AgentEvent, None]:
        assert self._threads is not None
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        answer = await loop.run_in_executor(self._threads, context.run, self.agent.predict, request)
        response = answer if isinstance(answer, ResponsesAgentResponse) else ResponsesAgentResponse(**answer)
        for event in from_response(response):
            yield event

    async def _threaded(self, request: ResponsesAgentRequest) -> AsyncGenerator[AgentEvent, None]:
        """``predict_stream`` on a worker thread, its events handed over through a bounded inbox:
        the thread waits when the consumer lags (a slow client slows its own run)."""
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(INBOX)
        stop = threading.Event()
        context = contextvars.copy_context()

        def hand_over(kind: str, value: Any) -> None:
            put = asyncio.run_coroutine_threadsafe(inbox.put((kind, value)), loop)
            while not stop.is_set():
                try:
                    put.result(timeout=0.5)
                    return
                except TimeoutError:
                    continue
            put.cancel()

        def produce() -> None:
            stream: Iterator[Any] = self.agent.predict_stream(request)
            try:
                for raw in stream:
                    if stop.is_set():
                        break
                    data = raw.model_dump(exclude_none=True) if hasattr(raw, "model_dump") else dict(raw)
                    if (event := from_mlflow(data)) is not None:
                        hand_over("item", event)
            except BaseException as exc:  # noqa: BLE001 - handed to the loop
                hand_over("error", exc)
            else:
                hand_over("done", None)
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()

        assert self._threads is not None
        loop.run_in_executor(self._threads, context.run, produce)
        try:
            while True:
                kind, value = await inbox.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            stop.set()

    @property
    def sessions_in_store(self) -> bool:
        """Whether the agent's conversations are SDK sessions in the state store, which the
        Conversations API serves (the package's OpenAI Agents SDK agents, with the store on)."""
        return self.native and bool(self.agent.sessions_in_store())

    def health(self) -> dict[str, Any]:
        """The agent's readiness detail (its MCP servers, say)."""
        return self.agent.health() if self.native else {}  # type: ignore[no-any-return]

    async def agent_tasks(self) -> list[str]:
        """The tasks on the agent's own loop, by name (native agents; for leak checks)."""
        return await self.agent.atask_names() if self.native else []  # type: ignore[no-any-return]

    def close(self) -> None:
        close = getattr(self.agent, "close", None)
        if callable(close):
            close()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        try:
            mlflow.flush_trace_async_logging()
        except Exception:
            _logger.debug("could not flush traces", exc_info=True)
