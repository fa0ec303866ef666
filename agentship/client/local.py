"""A logged or registered agent, loaded in this process with ``mlflow.pyfunc.load_model``.

Its runs are traced as under a server; :meth:`LocalAgent.close` writes the traces out before it
returns (MLflow exports them on a background queue, which an exiting interpreter would cut
short), and closes the model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import mlflow

from agentship.client.base import AgentClient
from agentship.client.exchange_log import ExchangeLogger
from agentship.model_logging import agent_summary, logged_config

_logger = logging.getLogger("agentship.client")


class LocalAgent(AgentClient):
    def __init__(
        self, model_uri: str, conversation_id: str | None = None, logger: ExchangeLogger | None = None
    ) -> None:
        self.model = mlflow.pyfunc.load_model(model_uri)
        super().__init__(conversation_id, logger, agent_summary(logged_config(self.model)))

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.model.predict(body))

    def _events(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield from self.model.predict_stream(body)

    def close(self) -> None:
        raw = self.model.get_raw_model() if hasattr(self.model, "get_raw_model") else None
        close = getattr(raw, "close", None)
        if callable(close):
            close()
        try:
            mlflow.flush_trace_async_logging(terminate=True)  # later traces are then written at once
        except Exception:  # tracing never fails the client
            _logger.warning("could not write this run's traces", exc_info=True)
