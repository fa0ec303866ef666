"""The A2A routes of ``agentship serve --a2a``, built from the ``a2a-sdk``'s own parts.

* ``GET /.well-known/agent-card.json``: the agent card (:mod:`.card`);
* ``POST /``: JSON-RPC, protocol 1.0 (``SendMessage``, ``SendStreamingMessage``, ``GetTask``,
  ``CancelTask``, ``ListTasks``, ``SubscribeToTask``) and, on the same endpoint, 0.3
  (``message/send``, ``message/stream``, ``tasks/get``, ``tasks/cancel``, …).

The SDK's dispatcher and request handler speak the protocol and keep the tasks; the server
adds what its other routes have: the body's size and time limits and nesting cap, then a slot
under ``--max-concurrency`` (429 + ``Retry-After``), a bad message refused before any task
exists (JSON-RPC -32602, or -32005 for file parts), the request's user by the identity rule
(:mod:`agentship.server.http.identity`), and the client's disconnect noticed
(:class:`~.executor.Exchange`), which cancels the run it waits for. Tasks are kept in the state
store (the SDK's ``DatabaseTaskStore`` over its ``agentship_a2a_tasks`` table), so any replica
answers for any task, and they expire with the store's TTL; without a store, in each worker's
memory (the most recent :data:`MAX_TASKS`). Each is visible only to the user that created it.

Push notifications: clients register URLs the SDK's way; with the state store they are kept in
it and delivered at least once through its outbox (:mod:`agentship.server.webhooks.a2a`), without
it by the SDK's own sender, once, best effort.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING

import httpx
from a2a.server.agent_execution import RequestContext, SimpleRequestContextBuilder
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.server.tasks import (
    BasePushNotificationSender,
    DatabasePushNotificationConfigStore,
    DatabaseTaskStore,
    InMemoryPushNotificationConfigStore,
    InMemoryTaskStore,
    PushNotificationConfigStore,
    PushNotificationSender,
    TaskStore,
)
from a2a.types.a2a_pb2 import SendMessageRequest, Task
from a2a.utils.errors import InvalidParamsError
from a2a.utils.push_url_validator import validate_push_notification_url
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from agentship.errors import StateError
from agentship.server.core.errors import HttpError, classify
from agentship.server.http.body import MAX_DEPTH, ClientGone, read_body, too_deep
from agentship.server.http.identity import Identity, identify
from agentship.server.http.quotas import METER, Admitted, Meter
from agentship.server.protocols.a2a.card import AgentDescription, Skill, agent_card, describe
from agentship.server.protocols.a2a.events import message_text
from agentship.server.protocols.a2a.executor import EXCHANGE, Exchange, ServedAgentExecutor
from agentship.server.webhooks.a2a import OutboxPushSender
from agentship.server.webhooks.settings import allow_private_push

if TYPE_CHECKING:
    from agentship.server.services import Services

_logger = logging.getLogger("agentship.server")

RPC_PATH = "/"
MAX_TASKS = 10_000
"""Tasks kept per worker without a state store; the oldest are forgotten first."""
TASKS_TABLE = "agentship_a2a_tasks"
PUSH_TABLE = "agentship_a2a_push_configs"
PUSH_KEY_ENV = "AGENTSHIP_A2A_PUSH_KEY"
"""A Fernet key: push configs (their tokens and credentials) are encrypted at rest with it."""
MAX_TASK_ID = 36
"""The longest task or context id the task table keeps (the a2a-sdk's task model's)."""


def _owner(context: ServerCallContext) -> str:
    """Whose task it is: the request's user, by the identity rule (anonymous: "")."""
    exchange = context.state.get(EXCHANGE)
    return exchange.identity.user if isinstance(exchange, Exchange) else ""


class RecentTasks(InMemoryTaskStore):
    """The SDK's in-memory task store, bounded: beyond ``limit`` tasks the oldest goes. For a server
    without a state store (each worker then answers only for its own tasks). It keeps each task's
    owner, never the request's context (its headers hold credentials)."""

    def __init__(self, limit: int = MAX_TASKS) -> None:
        super().__init__(owner_resolver=_owner)
        self._limit = limit
        self._order: OrderedDict[str, str] = OrderedDict()

    async def save(self, task: Task, context: ServerCallContext) -> None:
        await super().save(task, context)
        if task.id not in self._order:
            self._order[task.id] = _owner(context)
            while len(self._order) > self._limit:
                oldest, owner = self._order.popitem(last=False)
                await super().delete(oldest, _context_of(owner))


def _context_of(owner: str) -> ServerCallContext:
    """A call context that names only ``owner`` (for the store's own housekeeping)."""
    return ServerCallContext(state={EXCHANGE: Exchange(None, Identity(owner, "request"))})


def task_store(services: Services) -> TaskStore:
    """Where A2A tasks are kept: in the state store (any replica answers for any task), else in
    this worker's memory."""
    if services.store is None:
        return RecentTasks()
    return DatabaseTaskStore(
        services.store.engine, create_table=False, table_name=TASKS_TABLE, owner_resolver=_owner
    )


def push_parts(services: Services) -> tuple[PushNotificationConfigStore, PushNotificationSender]:
    """Where push configs are kept, and what sends: the store and its outbox (at least once), or
    this worker's memory and the SDK's sender (once, best effort)."""
    private = allow_private_push(os.environ)
    if services.store is None:
        memory = InMemoryPushNotificationConfigStore(owner_resolver=_owner)
        validator = None if private else validate_push_notification_url
        http = httpx.AsyncClient(timeout=10, follow_redirects=False, trust_env=False)
        return memory, BasePushNotificationSender(http, memory, push_url_validator=validator)
    configs = DatabasePushNotificationConfigStore(
        services.store.engine,
        create_table=False,
        table_name=PUSH_TABLE,
        encryption_key=os.environ.get(PUSH_KEY_ENV) or None,
        owner_resolver=_owner,
    )
    return configs, OutboxPushSender(services.store.outbox, configs, allow_private=private)


class _CallContexts(DefaultServerCallContextBuilder):
    """The SDK's call context, carrying the request's :class:`Exchange` to the executor."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state[EXCHANGE] = request.scope.get(EXCHANGE)
        return context


class _CheckedRequests(SimpleRequestContextBuilder):
    """Refuses a message the agent cannot read, or whose ids the task store cannot keep, before the
    SDK creates a task for it."""

    async def build(
        self,
        context: ServerCallContext,
        params: SendMessageRequest | None = None,
        task_id: str | None = None,
        context_id: str | None = None,
        task: Task | None = None,
    ) -> RequestContext:
        if params is not None:
            message_text(params.message)  # raises the JSON-RPC error
            for name, value in (("contextId", params.message.context_id), ("taskId", params.message.task_id)):
                if len(value) > MAX_TASK_ID:
                    raise InvalidParamsError(f"'message.{name}' must be at most {MAX_TASK_ID} characters")
        return await super().build(context, params, task_id, context_id, task)


def rpc_error(error: HttpError, rpc_code: int) -> JSONResponse:
    """A refusal before the request was read: its HTTP status, and a JSON-RPC error body."""
    body = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": rpc_code, "message": error.message, "data": {"code": error.code}},
    }
    return JSONResponse(body, status_code=error.status, headers=error.headers or None)


class _Endpoint:
    """``POST /``: read the body within limits, admit, hand it to the SDK's dispatcher."""

    def __init__(self, services: Services, dispatcher: JsonRpcDispatcher) -> None:
        self.services = services
        self.dispatcher = dispatcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body (no slot is held while a client uploads), then admit, then dispatch."""
        try:
            body = await read_body(Request(scope, receive), self.services.settings.body_limits)
            if (depth := too_deep(body)) is not None:
                message = (
                    f"the request body nests arrays or objects {depth} levels deep; the limit is {MAX_DEPTH}"
                )
                raise HttpError(400, "invalid_request_error", message, "too_deep")
            identity = identify(scope)
            admitted = await self._admit(scope, body)
            exchange = Exchange(self.services.admission.admit(), identity)
        except ClientGone:
            return
        except HttpError as error:
            code = -32700 if error.code == "too_deep" else -32000 if error.status in (429, 503) else -32600
            await rpc_error(error, code)(scope, receive, send)
            return
        try:
            await self._serve({**scope, EXCHANGE: exchange}, receive, send, exchange, body, admitted)
        finally:
            exchange.release()

    async def _admit(self, scope: Scope, body: bytes) -> Admitted | None:
        """Count a message that runs the agent against its caller's limits, as ``/responses``
        counts a request (a 429 past one); its run counts what it spends through the meter."""
        limiter = self.services.limits
        if limiter is None or not runs_agent(body):
            return None
        try:
            admitted = await limiter.admit_scope(scope)
        except StateError as exc:  # the store is down: a 503, as on /responses
            raise classify(exc, self.services.settings.retry_after_s) from exc
        if admitted is not None:
            METER.set(Meter(limiter, admitted))
        return admitted

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        exchange: Exchange,
        body: bytes,
        admitted: Admitted | None,
    ) -> None:
        watcher = asyncio.create_task(_watch(receive, exchange.gone), name="agentship-a2a-watch")
        replay = _replay(body, exchange.gone)
        try:
            response = await self.dispatcher.handle_requests(Request(scope, replay))
            if admitted is not None:
                response.headers.update(admitted.headers)
            await response(scope, replay, send)
        finally:
            watcher.cancel()


RUNS_AGENT = frozenset({"SendMessage", "SendStreamingMessage", "message/send", "message/stream"})
"""The JSON-RPC methods (1.0, and 0.3) that run the agent: what limits count."""


def runs_agent(body: bytes) -> bool:
    """Whether a JSON-RPC body (a call, or a batch) calls a method that runs the agent."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    calls = parsed if isinstance(parsed, list) else [parsed]
    return any(isinstance(call, dict) and call.get("method") in RUNS_AGENT for call in calls)


async def _watch(receive: Receive, gone: asyncio.Event) -> None:
    """Read the connection after the body: a disconnect sets ``gone``."""
    with suppress(asyncio.CancelledError):
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()


def _replay(body: bytes, gone: asyncio.Event) -> Callable[[], Awaitable[Message]]:
    """A ``receive`` giving the body already read, then the disconnect when it happens."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    return receive


class _Card:
    """``GET /.well-known/agent-card.json``, for the URL the client reached (or ``--a2a-url``)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._agent: AgentDescription | None = None

    async def serve(self, request: Request) -> Response:
        if self._agent is None:
            runner = self.services.runner
            self._agent = await asyncio.to_thread(describe, runner.model_config(), runner.model_uri)
        url = self.services.settings.a2a_url or str(request.base_url)
        card = agent_card(self._agent, url, bearer=self.services.bearer_auth)
        return JSONResponse(agent_card_to_dict(card))


_CAPABILITIES = agent_card(AgentDescription("agent", "agent", [Skill("chat", "chat")]), RPC_PATH)
"""What the request handler checks (streaming); clients get the model's card from :class:`_Card`."""


class A2AService:
    """The A2A side of the server: the SDK's request handler over the served model, its routes,
    and what closes it at shutdown."""

    def __init__(self, services: Services) -> None:
        self.services = services
        configs, self.push = push_parts(services)
        self.handler = DefaultRequestHandler(
            agent_executor=ServedAgentExecutor(services),
            task_store=task_store(services),
            agent_card=_CAPABILITIES,
            request_context_builder=_CheckedRequests(),
            push_config_store=configs,
            push_sender=self.push,
            push_url_validator=None if allow_private_push(os.environ) else validate_push_notification_url,
        )
        self.dispatcher = JsonRpcDispatcher(
            self.handler,
            context_builder=_CallContexts(),
            enable_v0_3_compat=True,
            shutdown_grace_period=services.settings.drain_timeout_s,
        )

        self.card = _Card(services).serve
        """``GET /.well-known/agent-card.json``."""
        self.rpc = _Endpoint(services, self.dispatcher)
        """``POST /``: JSON-RPC."""

    async def aclose(self) -> None:
        await self.handler.aclose()
        if isinstance(self.push, BasePushNotificationSender):
            await self.push._client.aclose()  # the SDK's sender has no close of its own


__all__ = ["A2AService"]
