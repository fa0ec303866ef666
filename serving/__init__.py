"""The repository's entry to the agent server, as the users asked for it: ``python -m serving``,
``serving.ray_serve`` and ``python serving/client.py`` work from a checkout.

The server itself is :mod:`agentship.server` (``agentship serve`` from an install); the clients
are :mod:`agentship.client`. This package only points there, and is not part of the wheel.
"""

from agentship.server import AgentServer, ModelRunner, ServerSettings, app_from_env, create_app

__all__ = ["AgentServer", "ModelRunner", "ServerSettings", "app_from_env", "create_app"]
