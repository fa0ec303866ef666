"""The read-only routes: ``/health``, ``/ready``, ``/version``, ``/v1/models``. Each answer is
built from its model here, which ``/openapi.json`` shows."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Literal

import mlflow
from openai.types import Model
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import agentship
from agentship.compat import VERSION_KEY
from agentship.server.services import Services


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    model_uri: str
    pid: int
    in_flight: int
    """Requests holding a slot now."""
    threads: list[str]
    tasks: list[str]
    """The server loop's tasks, by name."""
    agent_tasks: list[str]
    """The agent's own loop's tasks, by name (the package's agents)."""
    agent: dict[str, Any]
    """The agent's readiness detail (its MCP servers, say)."""


class Version(BaseModel):
    agentship: str
    model_agentship: str | None
    """The agentship the model was logged with."""
    mlflow: str
    model_uri: str
    runner: str
    agent: dict[str, Any]


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


def _json(model: BaseModel) -> Response:
    return JSONResponse(model.model_dump(mode="json"))


class InfoRoutes:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def health(self, request: Request) -> Response:
        return _json(Health(status="ok"))

    async def ready(self, request: Request) -> Response:
        services = self.services
        ready = Ready(
            status="ready",
            model_uri=services.settings.model_uri,
            pid=os.getpid(),
            in_flight=services.admission.in_flight,
            threads=sorted(t.name for t in threading.enumerate()),
            tasks=sorted(t.get_name() for t in asyncio.all_tasks()),
            agent_tasks=await services.runner.agent_tasks(),
            agent=services.runner.health(),
        )
        return _json(ready)

    async def version(self, request: Request) -> Response:
        runner = self.services.runner
        logged_with = getattr(runner.pyfunc.metadata, "metadata", None) or {}
        version = Version(
            agentship=agentship.__version__,
            model_agentship=logged_with.get(VERSION_KEY),
            mlflow=mlflow.__version__,
            model_uri=self.services.settings.model_uri,
            runner=runner.kind,
            agent=runner.agent_summary(),
        )
        return _json(version)

    async def models(self, request: Request) -> Response:
        model = Model(id=self.services.model_name, object="model", created=0, owned_by="agentship")
        return _json(ModelList(object="list", data=[model]))
