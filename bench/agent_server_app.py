"""Contender (b): MLflow's own ``AgentServer``, serving the same registered model with async
handlers that use the agent's async core. Run by bench/run.py with ``BENCH_MODEL_URI`` set."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import mlflow
from mlflow.genai.agent_server import AgentServer, invoke, stream

from agentship.events import reduce, to_mlflow

_agent = mlflow.pyfunc.load_model(os.environ["BENCH_MODEL_URI"]).get_raw_model()


@invoke()
async def handle(request: dict[str, Any]) -> dict[str, Any]:
    events = [event async for event in _agent.aevents(request, deltas=False)]
    return reduce(events).model_dump(exclude_none=True)


@stream()
async def handle_stream(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    async for event in _agent.aevents(request):
        for data in to_mlflow(event):
            yield data


app = AgentServer("ResponsesAgent").app
