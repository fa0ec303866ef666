"""A stand-in for a kagent agent: an A2A server built from the a2a-sdk's own server parts.

It speaks the real protocol (its card offers only protocol 0.3, as an older kagent would) and
answers the way kagent's executors do: a ``submitted`` task, a ``working`` status with kagent
metadata, a tool call and its result as data-part artifacts, the answer streamed as appended
chunks of one artifact then replaced whole on its last chunk, ADK usage metadata on it, and
``completed``. It answers ``kagent says: <question>`` and records the context ids it was sent.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from a2a.helpers import new_data_part, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Task,
    TaskState,
    TaskStatus,
)
from starlette.applications import Starlette

from agentship.testing.processes import free_port

USAGE = {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18}


@dataclass
class StandIn:
    url: str
    contexts: list[str] = field(default_factory=list)


class KagentLikeExecutor(AgentExecutor):
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id and context.message
        self.seen.append(context.context_id)
        if context.current_task is None:
            status = TaskStatus(state=TaskState.TASK_STATE_SUBMITTED, message=context.message)
            await event_queue.enqueue_event(
                Task(id=context.task_id, context_id=context.context_id, status=status)
            )
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.update_status(TaskState.TASK_STATE_WORKING, metadata={"kagent_app_name": "k8s-agent"})
        call = new_data_part({"id": "call-1", "name": "get_pods", "args": {"namespace": "default"}})
        call.metadata.update({"kagent_type": "function_call"})
        await updater.add_artifact([call], last_chunk=True)
        result = new_data_part({"id": "call-1", "name": "get_pods", "response": {"result": "3 pods"}})
        result.metadata.update({"kagent_type": "function_response"})
        await updater.add_artifact([result], last_chunk=True)
        answer, artifact_id = f"kagent says: {context.get_user_input()}", uuid.uuid4().hex
        for start in range(0, len(answer), 5):
            await updater.add_artifact(
                [new_text_part(answer[start : start + 5])], artifact_id, append=start > 0, last_chunk=False
            )
            await asyncio.sleep(0.05)
        metadata = {"kagent_usage_metadata": USAGE}
        await updater.add_artifact([new_text_part(answer)], artifact_id, metadata=metadata, last_chunk=True)
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def _app(url: str, seen: list[str]) -> Starlette:
    card = AgentCard(
        name="k8s-agent",
        description="A kagent agent (stand-in)",
        version="0.1.0",
        supported_interfaces=[AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="0.3")],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text"],
        default_output_modes=["text"],
        skills=[AgentSkill(id="k8s", name="k8s", description="Kubernetes questions", tags=["k8s"])],
    )
    handler = DefaultRequestHandler(KagentLikeExecutor(seen), InMemoryTaskStore(), card)
    routes = [
        *create_agent_card_routes(card),
        *create_jsonrpc_routes(handler, rpc_url="/", enable_v0_3_compat=True),
    ]
    return Starlette(routes=routes)


@contextmanager
def kagent_standin() -> Iterator[StandIn]:
    """The stand-in on a loopback port, served by uvicorn on a thread, for the ``with`` block."""
    port = free_port()
    standin = StandIn(f"http://127.0.0.1:{port}")
    config = uvicorn.Config(
        _app(standin.url + "/", standin.contexts), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="kagent-standin", daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the stand-in did not start"
            threading.Event().wait(0.05)
        yield standin
    finally:
        server.should_exit = True
        thread.join(10)
