"""MLflow model-from-code: an OpenAI Agents SDK agent as a ResponsesAgent.

Log it with ``agentship log --agent openai-agents`` (or ``python logging_scripts/log_agent.py``).
The agent is described entirely by the model config (see ``agentship/configs/openai_agents.yaml``);
the endpoint and key come from ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` when the model is served.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import mlflow

from agentship.openai_agents import OpenAIAgentsBackend, parse_config
from agentship.openai_agents.tracing import install as install_tracing
from agentship.responses_agent import AgentBackend, AgentshipResponsesAgent


class OpenAIAgentsResponsesAgent(AgentshipResponsesAgent):
    """Runs an ``agents.Agent`` tree (tools, handoffs, max turns) for Responses requests."""

    def build_backend(self, model_config: Mapping[str, Any]) -> AgentBackend:
        config = parse_config(dict(model_config))
        if config.tracing:
            install_tracing()  # SDK spans into MLflow; the SDK's export to OpenAI is off
        return OpenAIAgentsBackend(config, os.environ)


mlflow.models.set_model(OpenAIAgentsResponsesAgent())
