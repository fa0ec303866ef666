"""Example function tools. Deterministic, so tests and the demo can assert on them."""

from __future__ import annotations

from agents import RunContextWrapper
from agentship.openai_agents.tools import AgentRunContext

_FORECASTS = {
    "paris": "18°C and sunny",
    "london": "12°C and light rain",
    "tokyo": "22°C and clear",
    "berlin": "15°C and cloudy",
}


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The city's name, for example "Paris".
    """
    forecast = _FORECASTS.get(city.strip().lower())
    if forecast is None:
        return f"No forecast is available for {city}."
    return f"The weather in {city} is {forecast}."


def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def failing_tool(reason: str) -> str:
    """A tool that always raises, to show how tool errors reach the model.

    Args:
        reason: Why it should fail.
    """
    raise RuntimeError(f"failing_tool refused: {reason}")


def whoami(ctx: RunContextWrapper[AgentRunContext]) -> str:
    """Tell who is asking, from the request's context and custom inputs."""
    user = ctx.context.user_id or ctx.context.custom_inputs.get("user") or "anonymous"
    ctx.context.custom_outputs["whoami_called"] = True
    return f"You are {user}."


def send_email(to: str, body: str) -> str:
    """Send an email (the example's risky tool: its config makes it wait for approval).

    Args:
        to: Who to send it to.
        body: What to say.
    """
    return f"Email sent to {to}."
