"""The agent server as a Ray Serve application (:mod:`agentship.server.integrations.ray`):
``serve run serving.ray_serve:build_app model_uri=models:/NAME@ALIAS`` from a checkout."""

from agentship.server.integrations.ray import AgentServer, AgentServerDeployment, build_app

__all__ = ["AgentServer", "AgentServerDeployment", "build_app"]
