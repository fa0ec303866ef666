"""The scripted OpenAI-compatible model server that stands in for an LLM in tests and demos."""

from agentship.testing.scripted_llm.app import MODEL_ID, ScriptedLLM, create_app, embed
from agentship.testing.scripted_llm.rules import Behaviour, Message, Reply, ToolSpec, decide

__all__ = [
    "MODEL_ID",
    "Behaviour",
    "Message",
    "Reply",
    "ScriptedLLM",
    "ToolSpec",
    "create_app",
    "decide",
    "embed",
]
