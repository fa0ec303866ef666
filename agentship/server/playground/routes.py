"""The playground's routes: its page and files (served without a key, like any static page) and
its settings, ``GET /playground/config`` (behind the bearer key when keys are on, like the API).

With keys on, the page asks for a key when ``/playground/config`` answers 401, and sends it as
``Authorization: Bearer`` on each of its calls; it keeps it in the tab's ``sessionStorage``.
The files are read once, when the routes are made, from the installed package.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import mlflow
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agentship.server.observability import otlp
from agentship.server.services import Services

HTML = "text/html"
JAVASCRIPT = "text/javascript"
CSS = "text/css"
PAGE = "index.html"
FILES = {PAGE: HTML, "playground.js": JAVASCRIPT, "stream.js": JAVASCRIPT, "playground.css": CSS}
"""The playground's files and their media types (the page is ``/playground``, the others
``/playground/NAME``)."""
DEFAULT_EXPERIMENT = "0"
"""MLflow's Default experiment, where traces go when no experiment is named."""
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    # Everything the page loads or calls is this server's: no CDN, no inline script.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


class PlaygroundConfig(BaseModel):
    """What the page needs to know of the server."""

    model: str
    """The model name responses report."""
    stored: bool
    """Whether responses are stored: the page continues a conversation with
    ``previous_response_id``; without the state store it sends the whole conversation again."""
    trace_url: str | None
    """A trace's page in the MLflow UI, with ``{trace_id}`` where the trace's id goes; null when
    no UI is known (the page shows the trace id alone)."""


def mlflow_ui(explicit: str | None, tracking_uri: str, traces_in_store: bool) -> str | None:
    """The MLflow UI's address: ``explicit``, else the tracking URI when it is an MLflow server
    (``http(s)://``, its credentials dropped) that the traces go to; else None. Pure."""
    if explicit:
        return explicit.rstrip("/")
    parts = urlsplit(tracking_uri)
    if not traces_in_store or parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def trace_url(ui: str | None, experiment_id: str) -> str | None:
    """The template of a trace's page in the MLflow UI (``{trace_id}`` to fill). Pure."""
    if ui is None:
        return None
    return f"{ui}/#/experiments/{experiment_id}/traces?selectedEvaluationId={{trace_id}}"


def config_of(services: Services) -> PlaygroundConfig:
    """The page's settings for the running server (its experiment is resolved by then)."""
    ui = mlflow_ui(
        services.settings.mlflow_ui_url, mlflow.get_tracking_uri(), not otlp.replaces_store(os.environ)
    )
    experiment = os.environ.get("MLFLOW_EXPERIMENT_ID") or DEFAULT_EXPERIMENT
    return PlaygroundConfig(
        model=services.model_name, stored=services.stored is not None, trace_url=trace_url(ui, experiment)
    )


type Endpoint = Callable[[Request], Awaitable[Response]]


class PlaygroundRoutes:
    def __init__(self, services: Services) -> None:
        self.settings = config_of(services)
        folder = resources.files("agentship.server.playground")
        self._files = {name: folder.joinpath(name).read_bytes() for name in FILES}

    def file(self, name: str) -> Endpoint:
        """The endpoint that serves one of :data:`FILES`."""
        body, media = self._files[name], FILES[name]

        async def serve(request: Request) -> Response:
            return Response(body, media_type=media, headers=_HEADERS)

        return serve

    async def config(self, request: Request) -> Response:
        return JSONResponse(self.settings.model_dump(mode="json"))
