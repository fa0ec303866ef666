"""What an evaluation runs: a registered model loaded here, or an agent served at a URL.

Each target's :meth:`predict` is the ``predict_fn`` MLflow's evaluation and its conversation
simulator call: Responses ``input`` (the conversation so far), optional ``context`` and
``custom_inputs``, and the simulator's ``mlflow_session_id``, which becomes the request's
``context.conversation_id``. Each call emits one trace:

* :class:`LocalTarget` loads the model with ``mlflow.pyfunc.load_model``; the model's own
  ``predict`` is traced (the AGENT span with its CHAT_MODEL and TOOL spans), and MLflow's
  OpenAI autolog, which evaluation would switch on, stays off.
* :class:`ServedTarget` POSTs to ``URL/invocations`` (``mlflow models serve`` or
  ``python -m serving``) under a client span. When the server returns its trace id
  (``x-mlflow-return-trace-id``) and writes to the tracking store the evaluator reads, the
  server's trace is merged under that span (``mlflow.add_trace``), so the scorers see its
  tool and model spans; otherwise the trace holds the response, with its usage.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import mlflow
from mlflow.entities import SpanType, Trace
from mlflow.exceptions import MlflowException
from mlflow.tracing.constant import SpanAttributeKey

from agentship.errors import AgentError, ConfigError
from agentship.tracing import tag_conversation

_logger = logging.getLogger(__name__)

RETURN_TRACE_HEADER = "x-mlflow-return-trace-id"
REQUEST_MS_ATTRIBUTE = "agentship.request_ms"
"""The HTTP round trip of a served call, on the client span (its trace also waits for the server's)."""


class TargetError(AgentError):
    """The agent under evaluation could not be called, or answered with an error."""


def request_body(
    input: list[dict[str, Any]] | str,
    context: dict[str, Any] | None = None,
    custom_inputs: dict[str, Any] | None = None,
    mlflow_session_id: str | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """The ResponsesAgent request for one evaluation call. Pure."""
    items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
    ctx = dict(context or {})
    if mlflow_session_id and not ctx.get("conversation_id"):
        ctx["conversation_id"] = mlflow_session_id
    if user_id and not ctx.get("user_id"):
        ctx["user_id"] = user_id
    body: dict[str, Any] = {"input": items}
    if ctx:
        body["context"] = ctx
    if custom_inputs:
        body["custom_inputs"] = dict(custom_inputs)
    return body


def usage_attribute(response: dict[str, Any]) -> dict[str, int] | None:
    """The response's usage as an MLflow CHAT_USAGE attribute; None when it reports none."""
    usage = response.get("usage")
    if not isinstance(usage, dict) or not usage.get("total_tokens"):
        return None
    return {k: int(usage.get(k) or 0) for k in ("input_tokens", "output_tokens", "total_tokens")}


class LocalTarget:
    """A logged or registered model, loaded in this process."""

    def __init__(self, model_uri: str) -> None:
        self.model_uri = model_uri
        try:
            self._model = mlflow.pyfunc.load_model(model_uri)
        except MlflowException as exc:
            raise ConfigError(f"cannot load {model_uri}: {exc.message}") from exc
        # The package's agents trace themselves. MLflow's evaluation would otherwise switch the
        # OpenAI autolog on, which patches the client and the Agents SDK a second time and
        # doubles every model-call span; explicitly disabled, it stays off.
        mlflow.openai.autolog(disable=True)

    def predict(
        self,
        input: list[dict[str, Any]] | str,
        context: dict[str, Any] | None = None,
        custom_inputs: dict[str, Any] | None = None,
        mlflow_session_id: str | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        body = request_body(input, context, custom_inputs, mlflow_session_id, user_id)
        answer = self._model.predict(body)
        return answer if isinstance(answer, dict) else dict(answer)

    def close(self) -> None:
        """Close the model, then write its runs' traces (MLflow's export queue would otherwise
        be cut short at interpreter exit)."""
        raw = self._model.get_raw_model() if hasattr(self._model, "get_raw_model") else None
        if raw is not None and hasattr(raw, "close"):
            raw.close()
        mlflow.flush_trace_async_logging(terminate=True)  # later traces are then written at once


@dataclass
class ServedTarget:
    """An agent served over HTTP at ``url`` (``/invocations``)."""

    url: str
    timeout_s: float = 300.0
    trace_wait_s: float = 10.0
    """How long to wait for the server's trace to reach the store (it exports asynchronously)."""

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self._client = httpx.Client(timeout=self.timeout_s)
        self._merge = True  # set off once the server's traces prove unreadable from here
        self.predict = mlflow.trace(self._predict, name="served_agent", span_type=SpanType.AGENT)

    def _predict(
        self,
        input: list[dict[str, Any]] | str,
        context: dict[str, Any] | None = None,
        custom_inputs: dict[str, Any] | None = None,
        mlflow_session_id: str | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        body = request_body(input, context, custom_inputs, mlflow_session_id, user_id)
        started = time.perf_counter()
        response = self._post(body)
        elapsed_ms = (time.perf_counter() - started) * 1000
        span = mlflow.get_current_active_span()
        if span is not None:
            span.set_attribute(REQUEST_MS_ATTRIBUTE, round(elapsed_ms, 1))
            context_of = body.get("context") or {}
            tag_conversation(context_of.get("conversation_id"), context_of.get("user_id"))
            if (usage := usage_attribute(response)) is not None:
                span.set_attribute(SpanAttributeKey.CHAT_USAGE, usage)
            trace_id = (response.get("metadata") or {}).get("trace_id")
            if trace_id:
                span.set_attribute("agentship.served_trace_id", trace_id)
                self._merge_served_trace(trace_id, span)
        return response

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            reply = self._client.post(
                f"{self.url}/invocations", json=body, headers={RETURN_TRACE_HEADER: "true"}
            )
        except httpx.HTTPError as exc:
            raise TargetError(f"the agent at {self.url} could not be reached: {exc}") from exc
        if reply.status_code != 200:
            raise TargetError(
                f"the agent at {self.url} answered HTTP {reply.status_code}: {reply.text[:500]}"
            )
        try:
            data = reply.json()
        except ValueError as exc:
            raise TargetError(f"the agent at {self.url} answered with a body that is not JSON") from exc
        if not isinstance(data, dict):
            raise TargetError(
                f"the agent at {self.url} answered with a JSON {type(data).__name__}, not a response"
            )
        return data

    def _merge_served_trace(self, trace_id: str, span: Any) -> None:
        if not self._merge:
            return
        served = self._wait_for_trace(trace_id)
        if served is None:
            self._merge = False
            _logger.warning(
                "the served agent's trace %s is not in this tracking store after %gs: scoring its "
                "responses only (serve it with the same MLFLOW_TRACKING_URI to score its spans)",
                trace_id,
                self.trace_wait_s,
            )
            return
        try:
            mlflow.add_trace(served, target=span)
        except MlflowException:
            _logger.warning("could not merge the served agent's trace %s", trace_id, exc_info=True)

    def _wait_for_trace(self, trace_id: str) -> Trace | None:
        deadline = time.monotonic() + self.trace_wait_s
        while True:
            try:
                trace = mlflow.get_trace(trace_id, silent=True)
            except MlflowException:
                trace = None
            if trace is not None and trace.info.state.value != "IN_PROGRESS" and trace.data.spans:
                return trace
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.25)

    def close(self) -> None:
        self._client.close()


type Target = LocalTarget | ServedTarget


def open_target(uri: str, *, timeout_s: float = 300.0) -> Target:
    """A served URL (``http://…``) or a model URI (``models:/NAME@alias``, ``runs:/…``)."""
    if uri.startswith(("http://", "https://")):
        return ServedTarget(uri, timeout_s=timeout_s)
    return LocalTarget(uri)
