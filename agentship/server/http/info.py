"""The read-only routes: ``/health``, ``/ready``, ``/version``, ``/v1/models``."""

from __future__ import annotations

import asyncio
import os
import threading

import mlflow
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import agentship
from agentship.compat import VERSION_KEY
from agentship.server.services import Services


class InfoRoutes:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        services = self.services
        return JSONResponse(
            {
                "status": "ready",
                "model_uri": services.settings.model_uri,
                "pid": os.getpid(),
                "in_flight": services.admission.in_flight,
                "threads": sorted(t.name for t in threading.enumerate()),
                "tasks": sorted(t.get_name() for t in asyncio.all_tasks()),
                "agent_tasks": await services.runner.agent_tasks(),
                "agent": services.runner.health(),
            }
        )

    async def version(self, request: Request) -> Response:
        runner = self.services.runner
        logged_with = getattr(runner.pyfunc.metadata, "metadata", None) or {}
        return JSONResponse(
            {
                "agentship": agentship.__version__,
                "model_agentship": logged_with.get(VERSION_KEY),
                "mlflow": mlflow.__version__,
                "model_uri": self.services.settings.model_uri,
                "runner": runner.kind,
                "agent": runner.agent_summary(),
            }
        )

    async def models(self, request: Request) -> Response:
        model = {"id": self.services.model_name, "object": "model", "created": 0, "owned_by": "agentship"}
        return JSONResponse({"object": "list", "data": [model]})
