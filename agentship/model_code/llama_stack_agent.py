"""MLflow model-from-code: an agent on a Llama Stack server as a ResponsesAgent.

Log it with ``agentship log --agent llama-stack``. Behaviour comes from the model config (see
``agentship/configs/llama_stack.yaml``, and ``llama_stack_rag.yaml`` for RAG); the server, agent,
model and key come from ``LLAMASTACK_BASE_URL``, ``LLAMASTACK_AGENT_ID``, ``LLAMASTACK_MODEL`` and
``LLAMASTACK_API_KEY`` when the model is served. At load the wrapper detects the server's API:
Agents API on /v1 (0.2.x) or /v1alpha (0.3.x), Responses + Conversations (0.4+, OGX 1.x), or chat
completions (any OpenAI-compatible server).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import mlflow

from agentship.llama_stack import LlamaStackBackend, parse_config
from agentship.responses_agent import AgentBackend, AgentshipResponsesAgent


class LlamaStackResponsesAgent(AgentshipResponsesAgent):
    """Sessions and turns on a Llama Stack server, with server-side and client tools."""

    def build_backend(self, model_config: Mapping[str, Any]) -> AgentBackend:
        return LlamaStackBackend(parse_config(dict(model_config)), os.environ)


mlflow.models.set_model(LlamaStackResponsesAgent())
