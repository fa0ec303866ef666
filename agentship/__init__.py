"""agentship: serve OpenAI Agents SDK and Llama Stack agents as MLflow ResponsesAgents."""

__version__ = "0.1.0"
