"""The agent server as a Ray Serve application: the same app (:func:`agentship.server.create_app`),
routes and error contract as ``agentship serve``, on Ray's replicas and HTTP proxy.

    serve run deploy/ray/serve.yaml                                   # or: serve deploy …
    serve run agentship.server.integrations.ray:build_app model_uri=models:/NAME@ALIAS

Each replica is one :class:`AgentServer` actor wrapping the Starlette app as its ASGI ingress:
Ray Serve runs the app's lifespan, so a replica loads the model once, opens the state store and
starts its background work at startup, and on shutdown (after Serve drained its requests, up to
``graceful_shutdown_timeout_s``) closes the model and flushes its traces. Point every replica at
one PostgreSQL state store (``AGENTSHIP_STATE_URL``) and they are stateless: any replica continues
any conversation, stored response or background run. Every answer carries the replica that gave
it in ``x-agentship-replica``.

The application's ``args`` are :class:`~agentship.server.ServerSettings` fields (``model_uri``,
``max_concurrency``, ``request_timeout_s``, …); replicas, autoscaling on ongoing requests and
shutdown timing are the deployment's options in the Serve config. Needs ``pip install
'agentship-mlflow[ray]'``.
"""

from __future__ import annotations

import os
from typing import Any

from ray import serve
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentship.server.app import AgentServer as App
from agentship.server.app import create_app
from agentship.server.observability import otlp
from agentship.server.settings import ServerSettings

REPLICA_HEADER = b"x-agentship-replica"
DEPLOYMENT = "AgentServer"
DEFAULT_OPTIONS: dict[str, Any] = {
    # Agents wait on their model: many requests per replica; the app's own limit answers 429 beyond.
    "max_ongoing_requests": 256,
    "graceful_shutdown_timeout_s": 30,
    "graceful_shutdown_wait_loop_s": 2,
    "health_check_period_s": 10,
}
"""The deployment's options unless the Serve config sets them (Ray's default ongoing limit is 5)."""


class _ReplicaHeader:
    """Names the replica on every HTTP answer (which one served a request, for operators)."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.replica = replica.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (REPLICA_HEADER, self.replica)],
                }
            await send(message)

        await self.app(scope, receive, named)


class AgentServer:
    """One replica: the agent server's app, built when Ray Serve starts the replica."""

    def __init__(self, settings: dict[str, Any]) -> None:
        otlp.prepare(os.environ)  # the runtime_env's OTLP settings, completed before MLflow reads them
        self._settings = ServerSettings.from_args(settings)
        self._app: App | None = None

    def __serve_build_asgi_app__(self) -> ASGIApp:
        self._app = create_app(self._settings)
        return _ReplicaHeader(self._app, serve.get_replica_context().replica_id.unique_id)

    async def check_health(self) -> None:
        """Ray Serve's health check: a replica whose model failed to load is replaced."""
        if self._app is not None and self._app.load_error:
            raise RuntimeError(f"the model did not load: {self._app.load_error}")


AgentServerDeployment = serve.deployment(name=DEPLOYMENT, **DEFAULT_OPTIONS)(serve.ingress()(AgentServer))


def build_app(args: dict[str, Any]) -> Any:
    """The application builder ``serve run``/``serve deploy`` call with the config's ``args``."""
    settings = dict(args)
    ServerSettings.from_args(settings)  # a bad argument fails the deploy, not every replica
    return AgentServerDeployment.bind(settings)
