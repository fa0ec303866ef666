"""Clients for served agents: none of them imports the server.

* :class:`ServedAgent`: an agent behind ``agentship serve`` or ``mlflow models serve``;
* :class:`LocalAgent`: a logged or registered agent, loaded in this process;
* :class:`A2AAgent`: any A2A agent (needs ``pip install 'agentship-mlflow[a2a]'``);
* :class:`ExchangeLogger`: logs each exchange to MLflow, out of band.

``agentship client`` is their command (:mod:`agentship.client.cli`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentship.client.base import API_KEY_ENV, AgentClient, answer_text
from agentship.client.exchange_log import Exchange, ExchangeLogger
from agentship.client.local import LocalAgent
from agentship.client.served import ServedAgent

if TYPE_CHECKING:
    from agentship.client.a2a import A2AAgent

__all__ = [
    "API_KEY_ENV",
    "A2AAgent",
    "AgentClient",
    "Exchange",
    "ExchangeLogger",
    "LocalAgent",
    "ServedAgent",
    "answer_text",
]


def __getattr__(name: str) -> Any:
    """``A2AAgent`` without importing the A2A SDK (an optional extra) until it is asked for."""
    if name == "A2AAgent":
        from agentship.client.a2a import A2AAgent

        return A2AAgent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
