"""The served agent's A2A agent card, built from its model config.

* ``name``: the config's ``name``; ``description``: its ``description``, else a sentence naming
  the agent: never its ``instructions`` (a system prompt is not for publishing);
* ``skills``: one per tool (function tools and Llama Stack client tools, described by their
  docstrings; Llama Stack tool groups; OpenAI Agents SDK handoffs);
* ``capabilities.streaming``: true;
* ``supportedInterfaces``: JSON-RPC at the URL the server is reached at, for protocol 1.0 and
  for 0.3 (the same endpoint answers both); the SDK adds 0.3's ``url``, ``protocolVersion``
  and ``preferredTransport`` fields, so older clients read the card too;
* with bearer keys on, ``securitySchemes`` declares HTTP bearer auth and ``securityRequirements``
  requires it, as the A2A spec describes: the card itself is public, so a client learns there
  how to authenticate.

:func:`describe` reads the tools (it imports them); :func:`agent_card` is pure.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_0_3, PROTOCOL_VERSION_1_0, TransportProtocol

import agentship

MODES = ["text/plain", "application/json"]
BEARER = "bearer"
"""The card's name for the server's bearer-key scheme."""


@dataclass(frozen=True)
class Skill:
    id: str
    description: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentDescription:
    """What the card says about the agent, independent of where it is served."""

    name: str
    description: str
    skills: list[Skill] = field(default_factory=list)


def _docstring(reference: str) -> str:
    """The first paragraph of a ``module:name`` tool's docstring, or the reference itself."""
    module, _, name = reference.partition(":")
    try:
        target = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return reference
    return (inspect.getdoc(target) or reference).split("\n\n")[0].replace("\n", " ")


def _tool_skills(config: Mapping[str, Any]) -> list[Skill]:
    skills = []
    for reference in [*(config.get("tools") or []), *(config.get("client_tools") or [])]:
        skills.append(Skill(str(reference).rpartition(":")[2], _docstring(str(reference)), ("tool",)))
    for group in config.get("toolgroups") or []:
        name = str(group.get("name") if isinstance(group, Mapping) else group)
        skills.append(Skill(name, f"Llama Stack tool group {name}", ("toolgroup",)))
    for handoff in config.get("handoffs") or []:
        if isinstance(handoff, Mapping) and handoff.get("name"):
            text = handoff.get("handoff_description") or f"Hands off to {handoff['name']}"
            skills.append(Skill(str(handoff["name"]), str(text), ("handoff",)))
    return skills


def describe(config: Mapping[str, Any], model_uri: str) -> AgentDescription:
    """The card's content for a model config (imports the config's tools for their docstrings)."""
    name = str(config.get("name") or model_uri)
    text = str(config.get("description") or f"The agent {name}, served by agentship.")
    return AgentDescription(name, " ".join(text.split()), _tool_skills(config))


def agent_card(agent: AgentDescription, url: str, bearer: bool = False) -> AgentCard:
    """The card for ``agent`` served at ``url`` (its JSON-RPC endpoint); ``bearer`` when the
    server requires a bearer key."""
    interfaces = [
        AgentInterface(url=url, protocol_binding=TransportProtocol.JSONRPC, protocol_version=version)
        for version in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)
    ]
    skills = [
        AgentSkill(id=s.id, name=s.id, description=s.description, tags=list(s.tags)) for s in agent.skills
    ]
    security: dict[str, object] = {}
    if bearer:
        scheme = HTTPAuthSecurityScheme(scheme="Bearer", description="an API key of this server")
        security = {
            "security_schemes": {BEARER: SecurityScheme(http_auth_security_scheme=scheme)},
            "security_requirements": [SecurityRequirement(schemes={BEARER: StringList()})],
        }
    return AgentCard(
        **security,  # type: ignore[arg-type]
        name=agent.name,
        description=agent.description,
        version=agentship.__version__,
        supported_interfaces=interfaces,
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        default_input_modes=MODES,
        default_output_modes=MODES,
        skills=skills,
    )
