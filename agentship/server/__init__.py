"""The agent server: streaming, OpenAI-compatible, concurrent, for any registered ResponsesAgent.

Run it with ``agentship serve -m models:/NAME@ALIAS``; embed it with :func:`create_app`. The
layout follows a request (``docs/architecture.md``):

* :mod:`.http`: body reading, bearer keys, the identity rule, the agent endpoint, info routes;
* :mod:`.protocols`: MLflow's ``/invocations``, OpenAI's ``/responses`` (with stored and
  background responses) and A2A, each turning requests into agent runs and runs into answers;
* :mod:`.core`: the model runner, one request's run, admission, errors;
* :mod:`.observability`: Prometheus metrics and the OTLP settings;
* :mod:`.playground`: the page at ``/playground`` that chats with the agent in a browser;
* :mod:`.integrations`: Ray Serve;
* :mod:`.services` builds all of it at startup, :mod:`.app` makes the routes from it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentship.server.app import AgentServer, app_from_env, create_app
    from agentship.server.core.runner import ModelRunner
    from agentship.server.settings import ServerSettings

_EXPORTS = {
    "AgentServer": "agentship.server.app",
    "app_from_env": "agentship.server.app",
    "create_app": "agentship.server.app",
    "ModelRunner": "agentship.server.core.runner",
    "ServerSettings": "agentship.server.settings",
}
__all__ = ["AgentServer", "ModelRunner", "ServerSettings", "app_from_env", "create_app"]


def __getattr__(name: str) -> Any:
    """The exports, imported when first asked for (``agentship serve`` imports only its CLI)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
