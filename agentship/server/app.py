"""The ASGI app of one model: ``create_app(settings)``. Starlette, uvicorn and sse-starlette.

A request's path through the server::

    metrics → bearer key → admission → identity → protocol → run → encoder → store / trace

At startup :func:`agentship.server.services.running` builds the services (the model, the state
store, background runs, trace export, A2A); only then are the routes made, from those
services and the one route table (:mod:`agentship.server.routes`), so no route exists
half-made. Routes: ``POST /invocations`` (MLflow's format); OpenAI's Responses API under
``/responses`` and ``/v1/responses`` (create; for stored responses get, delete, cancel, input
items); OpenAI's Conversations API under ``/conversations`` and ``/v1/conversations``;
``GET /v1/models``, ``/health``, ``/ready``, ``/version``, ``/metrics`` (Prometheus),
``/openapi.json`` (this list, as an OpenAPI 3.1 document); with ``--a2a``, the A2A agent card
and JSON-RPC endpoint. Anything else is answered in the OpenAI error shape.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Router
from starlette.types import Receive, Scope, Send

from agentship.server.core.errors import HttpError
from agentship.server.core.runner import ModelRunner
from agentship.server.http.auth import ApiKeys, BearerAuth, keys_from_environ
from agentship.server.http.endpoint import error_response
from agentship.server.http.oidc import OidcSettings, TokenVerifier
from agentship.server.observability import metrics
from agentship.server.routes import routes
from agentship.server.services import Services, running
from agentship.server.settings import ServerSettings

_logger = logging.getLogger("agentship.server")


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods, in the OpenAI error shape."""
    assert isinstance(exc, HTTPException)
    message = f"Invalid URL ({request.method} {request.url.path})" if exc.status_code == 404 else exc.detail
    return error_response(
        HttpError(exc.status_code, "invalid_request_error", message, headers=dict(exc.headers or {}))
    )


class AgentServer:
    """The server of one model, as an ASGI app: its routes exist once its services do.

    ``runner``, when given, is the loaded model (else it is loaded at startup); ``keys`` turns on
    bearer-key authentication (by default from the environment: ``AGENTSHIP_API_KEYS``,
    ``AGENTSHIP_API_KEYS_FILE``; without any it is off)."""

    def __init__(
        self,
        settings: ServerSettings,
        runner: ModelRunner | None = None,
        keys: ApiKeys | None = None,
        oidc: OidcSettings | None = None,
    ) -> None:
        self.settings = settings
        self.keys = keys if keys is not None else keys_from_environ()
        self.oidc = oidc if oidc is not None else OidcSettings.from_environ(os.environ)
        self._tokens: TokenVerifier | None = None
        self.services: Services | None = None
        self.load_error: str | None = None
        self._runner = runner
        self._app: Starlette | None = None
        self._lifespan = Router(lifespan=self._running)

    @asynccontextmanager
    async def _running(self, _: object) -> AsyncIterator[None]:
        try:
            keys = self.keys
            auth = (keys is not None and keys.authenticates) or self.oidc is not None
            tiers = keys.tiers if keys is not None and _limited(keys) else None
            async with running(self.settings, self._runner, bearer_auth=auth, tiers=tiers) as services:
                self.services = services
                self._tokens = TokenVerifier(self.oidc) if self.oidc is not None else None
                self._app = self._build(services)
                yield
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._app = None
            if self._tokens is not None:
                await self._tokens.aclose()

    def _build(self, services: Services) -> Starlette:
        served = routes(services)
        stack = [Middleware(metrics.RequestMetrics, routes=served)]  # outermost: a 401 is counted too
        if (self.keys is not None and self.keys.authenticates) or self._tokens is not None:
            described = [f"bearer keys ({self.keys.describe()})"] if self.keys is not None else []
            described += [self.oidc.describe()] if self.oidc is not None else []
            _logger.warning("authentication: on, %s", "; ".join(described))
            stack.append(Middleware(BearerAuth, keys=self.keys, tokens=self._tokens))
        return Starlette(routes=served, middleware=stack, exception_handlers={HTTPException: _http_error})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if self._app is None:
            error = HttpError(
                503, "server_error", "the server is not running", "not_ready", headers={"Retry-After": "1"}
            )
            await error_response(error)(scope, receive, send)
            return
        await self._app(scope, receive, send)


def _limited(keys: ApiKeys) -> bool:
    """Whether the key file sets limits: a tier, or a key's own."""
    return bool(keys.tiers()) or any(key.quota or key.tier for key in keys.all())


def create_app(
    settings: ServerSettings, runner: ModelRunner | None = None, keys: ApiKeys | None = None
) -> AgentServer:
    """The app for one model; it loads the model at startup unless a ``runner`` is given."""
    return AgentServer(settings, runner, keys)


def app_from_env() -> AgentServer:
    """The app factory uvicorn's workers call: settings come from ``SERVING_*`` variables."""
    return create_app(ServerSettings.from_env())
