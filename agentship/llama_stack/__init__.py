"""The Llama Stack / OGX backend: Agents API (0.2 / 0.3), Responses (0.4+, OGX 1.x), or chat completions."""

from agentship.llama_stack.backend import LlamaStackBackend
from agentship.llama_stack.config import LlamaStackConfig, LlamaStackEnv, parse_config

__all__ = ["LlamaStackBackend", "LlamaStackConfig", "LlamaStackEnv", "parse_config"]
