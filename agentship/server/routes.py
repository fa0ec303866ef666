"""The server's one route table: every route, what it is bound to, and what it says of itself.

:func:`table` lists the routes as :class:`Api` entries (path, method, the
:class:`~agentship.server.http.operation.Operation` ``/openapi.json`` shows, and how to bind the
route to the running services); :func:`routes` binds them, once the services exist (the app
serves exactly these); ``/openapi.json`` documents the same entries, and so does
``scripts/openapi.py`` without a running server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlflow.types.responses import ResponsesAgentResponse, ResponsesAgentStreamEvent
from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItem,
    ConversationItemList,
)
from openai.types.responses import Response, ResponseStreamEvent
from starlette.routing import BaseRoute

from agentship.server.http.endpoint import AgentEndpoint
from agentship.server.http.info import Health, InfoRoutes, ModelList, Ready, Version
from agentship.server.http.openapi import OpenApiEndpoint
from agentship.server.http.operation import JSON, SSE, TEXT, ApiRoute, Method, Operation, Param
from agentship.server.observability import metrics
from agentship.server.playground.routes import CSS, HTML, JAVASCRIPT, PlaygroundConfig, PlaygroundRoutes
from agentship.server.protocols.conversations.bodies import (
    INCLUDABLE,
    ConversationCreateBody,
    ConversationUpdateBody,
    ItemsCreateBody,
)
from agentship.server.protocols.conversations.items import ConversationItemPage
from agentship.server.protocols.conversations.routes import ConversationRoutes
from agentship.server.protocols.invocations import InvocationsBody, InvocationsProtocol
from agentship.server.protocols.responses.protocol import ResponsesProtocol
from agentship.server.protocols.responses.request import ResponsesBody
from agentship.server.protocols.responses.routes import InputItemPage, ResponseDeleted, StoredRoutes
from agentship.state.double_texting import POLICIES

if TYPE_CHECKING:
    from agentship.server.services import Services

A2A_CARD_PATH = "/.well-known/agent-card.json"
"""The A2A agent card's path (the a2a-sdk's ``AGENT_CARD_WELL_KNOWN_PATH``)."""
A2A_RPC_PATH = "/"
PLAYGROUND_PATH = "/playground"

USER = Param(
    "user",
    "The request's own claim to a user, used only when no bearer key and no gateway header "
    "(x-user-id) names one.",
    {"type": "string", "minLength": 1, "maxLength": 255},
)
INCLUDE = Param(
    "include",
    "Additional fields (items are kept whole).",
    {"type": "string", "enum": sorted(INCLUDABLE)},
    many=True,
)
ORDER = Param(
    "order", "asc or desc (the default).", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}
)
AFTER = Param("after", "List the items after this item id.", {"type": "string"})
LIMIT = Param("limit", "Items per page.", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20})
STREAM = Param("stream", "Replay the response as its stream of events.", {"type": "boolean"})
STARTING_AFTER = Param("starting_after", "Replay the events after this sequence number.", {"type": "integer"})
PAGE = (ORDER, AFTER, LIMIT, INCLUDE, USER)

_TEXT = {"type": "string"}
RUN_HEADERS = (
    Param(
        "Idempotency-Key",
        "Run the work once: a retry with the same key (and body) gets the first request's answer, or "
        "joins its stream while it runs. Needs the state store.",
        {"type": "string", "pattern": "^[ -~]{1,255}$"},
    ),
    Param(
        "Agentship-Double-Texting",
        "What this message does to its conversation's running turn (default: the server's).",
        {"type": "string", "enum": list(POLICIES)},
    ),
)
"""The headers a run reads ([Platform controls](../guides/controls.md))."""
RUN_REPLY_HEADERS = (
    Param("Idempotent-Replayed", "The answer of an earlier request with the same Idempotency-Key.", {"type": "string", "enum": ["true"]}),
    *(
        Param(f"x-ratelimit-{what}-{unit}", f"The caller's {meaning} ({unit}), when limits are set.", _TEXT)
        for unit in ("requests", "tokens")
        for what, meaning in (("limit", "limit"), ("remaining", "remaining allowance"), ("reset", "time until the count starts again"))
    ),
)  # fmt: skip
"""The headers a run's answer may carry."""


@dataclass
class Handlers:
    """What the routes are bound to, made from the running services."""

    services: Services
    invocations: AgentEndpoint
    responses: AgentEndpoint
    stored: StoredRoutes
    conversations: ConversationRoutes
    info: InfoRoutes
    openapi: OpenApiEndpoint
    playground: PlaygroundRoutes | None

    @classmethod
    def of(cls, services: Services, apis: list[Api]) -> Handlers:
        protocol = ResponsesProtocol(services.model_name, services.stored, services.background)
        return cls(
            services,
            invocations=AgentEndpoint(services, InvocationsProtocol()),
            responses=AgentEndpoint(services, protocol),
            stored=StoredRoutes(services),
            conversations=ConversationRoutes(services),
            info=InfoRoutes(services),
            openapi=OpenApiEndpoint(list(apis)),
            playground=PlaygroundRoutes(services) if services.settings.playground else None,
        )

    def play(self) -> PlaygroundRoutes:
        assert self.playground is not None, "a playground route with --no-playground"
        return self.playground

    def a2a_card(self) -> Any:
        assert self.services.a2a is not None, "an A2A route without --a2a"
        return self.services.a2a.card

    def a2a_rpc(self) -> Any:
        assert self.services.a2a is not None, "an A2A route without --a2a"
        return self.services.a2a.rpc


@dataclass(frozen=True)
class Api:
    path: str
    method: Method
    operation: Operation
    bind: Callable[[Handlers], Any]


def _responses(prefix: str, suffix: str) -> list[Api]:
    tag = "responses"
    p = f"{prefix}/responses"
    one = f"{p}/{{response_id}}"
    return [
        Api(p, "POST", Operation(f"createResponse{suffix}", "Create a response: run the agent.", tag, body=ResponsesBody, reply=Response, media=(JSON, SSE), events=ResponseStreamEvent, headers=RUN_HEADERS, reply_headers=RUN_REPLY_HEADERS), lambda h: h.responses),
        Api(one, "GET", Operation(f"getResponse{suffix}", "A stored response, or its events replayed (stream=true).", tag, reply=Response, media=(JSON, SSE), events=ResponseStreamEvent, query=(INCLUDE, STREAM, STARTING_AFTER, USER)), lambda h: h.stored.get),
        Api(one, "DELETE", Operation(f"deleteResponse{suffix}", "Delete a stored response.", tag, reply=ResponseDeleted, query=(USER,)), lambda h: h.stored.delete),
        Api(f"{one}/cancel", "POST", Operation(f"cancelResponse{suffix}", "Cancel a background response.", tag, reply=Response, query=(USER,)), lambda h: h.stored.cancel),
        Api(f"{one}/input_items", "GET", Operation(f"listInputItems{suffix}", "A stored response's input items.", tag, reply=InputItemPage, query=PAGE), lambda h: h.stored.input_items),
    ]  # fmt: skip


def _conversations(prefix: str, suffix: str) -> list[Api]:
    tag = "conversations"
    p = f"{prefix}/conversations"
    one = f"{p}/{{conversation_id}}"
    item = f"{one}/items/{{item_id}}"
    return [
        Api(p, "POST", Operation(f"createConversation{suffix}", "Create a conversation, with its first items and metadata.", tag, body=ConversationCreateBody, body_required=False, reply=Conversation, query=(USER,)), lambda h: h.conversations.create),
        Api(one, "GET", Operation(f"getConversation{suffix}", "A conversation.", tag, reply=Conversation, query=(USER,)), lambda h: h.conversations.retrieve),
        Api(one, "POST", Operation(f"updateConversation{suffix}", "Replace a conversation's metadata.", tag, body=ConversationUpdateBody, reply=Conversation, query=(USER,)), lambda h: h.conversations.update),
        Api(one, "DELETE", Operation(f"deleteConversation{suffix}", "Delete a conversation and its items.", tag, reply=ConversationDeletedResource, query=(USER,)), lambda h: h.conversations.delete),
        Api(f"{one}/items", "GET", Operation(f"listConversationItems{suffix}", "A conversation's items.", tag, reply=ConversationItemPage, query=PAGE), lambda h: h.conversations.list_items),
        Api(f"{one}/items", "POST", Operation(f"createConversationItems{suffix}", "Add items at a conversation's end.", tag, body=ItemsCreateBody, reply=ConversationItemList, query=(INCLUDE, USER)), lambda h: h.conversations.create_items),
        Api(item, "GET", Operation(f"getConversationItem{suffix}", "One item of a conversation.", tag, reply=ConversationItem, query=(INCLUDE, USER)), lambda h: h.conversations.retrieve_item),
        Api(item, "DELETE", Operation(f"deleteConversationItem{suffix}", "Delete one item of a conversation; answers the conversation.", tag, reply=Conversation, query=(USER,)), lambda h: h.conversations.delete_item),
    ]  # fmt: skip


def _info() -> list[Api]:
    tag = "server"
    return [
        Api("/v1/models", "GET", Operation("listModels", "The served model.", tag, reply=ModelList), lambda h: h.info.models),
        Api("/health", "GET", Operation("health", "The process is up.", tag, reply=Health, open=True), lambda h: h.info.health),
        Api("/ready", "GET", Operation("ready", "The model is loaded and the routes serve.", tag, reply=Ready, open=True), lambda h: h.info.ready),
        Api("/version", "GET", Operation("version", "Versions of agentship, MLflow and the model.", tag, reply=Version), lambda h: h.info.version),
        Api("/metrics", "GET", Operation("metrics", "Prometheus metrics.", tag, media=(TEXT,), open=True), lambda h: metrics.metrics_route),
        Api("/openapi.json", "GET", Operation("openapi", "This document.", tag, reply=dict[str, Any], open=True), lambda h: h.openapi.serve),
    ]  # fmt: skip


def _a2a() -> list[Api]:
    tag = "a2a (with --a2a)"
    return [
        Api(A2A_CARD_PATH, "GET", Operation("getAgentCard", "The A2A agent card.", tag, reply=dict[str, Any], open=True), lambda h: h.a2a_card()),
        Api(A2A_RPC_PATH, "POST", Operation("a2a", "A2A JSON-RPC (protocol 1.0, and 0.3).", tag, body=dict[str, Any], reply=dict[str, Any], media=(JSON, SSE)), lambda h: h.a2a_rpc()),
    ]  # fmt: skip


def _playground() -> list[Api]:
    tag = "playground (unless --no-playground)"
    p = PLAYGROUND_PATH
    return [
        Api(p, "GET", Operation("playground", "The playground: a page that chats with the agent.", tag, media=(HTML,), open=True), lambda h: h.play().file("index.html")),
        Api(f"{p}/playground.js", "GET", Operation("playgroundScript", "The playground's script.", tag, media=(JAVASCRIPT,), open=True), lambda h: h.play().file("playground.js")),
        Api(f"{p}/stream.js", "GET", Operation("playgroundStreamScript", "The playground's reader of a response's events.", tag, media=(JAVASCRIPT,), open=True), lambda h: h.play().file("stream.js")),
        Api(f"{p}/playground.css", "GET", Operation("playgroundStyle", "The playground's style sheet.", tag, media=(CSS,), open=True), lambda h: h.play().file("playground.css")),
        Api(f"{p}/config", "GET", Operation("playgroundConfig", "What the playground page needs to know of the server.", tag, reply=PlaygroundConfig), lambda h: h.play().config),
    ]  # fmt: skip


def table(a2a: bool, playground: bool = True) -> list[Api]:
    """Every route of a server (with its A2A routes if ``a2a``, its playground if ``playground``)."""
    invoke = Operation(
        "invoke", "Run the agent, in MLflow's ResponsesAgent format.", "invocations",
        body=InvocationsBody, reply=ResponsesAgentResponse, media=(JSON, SSE), events=ResponsesAgentStreamEvent,
        headers=RUN_HEADERS, reply_headers=RUN_REPLY_HEADERS,
    )  # fmt: skip
    apis = [Api("/invocations", "POST", invoke, lambda h: h.invocations)]
    for prefix, suffix in (("/v1", ""), ("", "Unversioned")):
        apis += _responses(prefix, suffix) + _conversations(prefix, suffix)
    return apis + (_a2a() if a2a else []) + (_playground() if playground else []) + _info()


def routes(services: Services) -> list[BaseRoute]:
    """Every route of the server, bound to its running services."""
    apis = table(a2a=services.a2a is not None, playground=services.settings.playground)
    handlers = Handlers.of(services, apis)
    return [
        ApiRoute(api.path, api.bind(handlers), method=api.method, operation=api.operation) for api in apis
    ]
