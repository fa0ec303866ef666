"""The pure A2A conversions: messages in, the agent's events out as task events, tasks read back."""

from __future__ import annotations

import itertools

import pytest
from a2a.types.a2a_pb2 import Message, Part, Role, StreamResponse, Task, TaskState
from a2a.utils.errors import ContentTypeNotSupportedError, InvalidParamsError
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Value
from mlflow.types.responses import create_function_call_item, create_function_call_output_item

from agentship.client.a2a import fold, task_answer, task_usage, tool_activity
from agentship.events import Completed, ItemDone, ReasoningDelta, TextDelta
from agentship.server.core.errors import HttpError
from agentship.server.protocols.a2a.card import agent_card, describe
from agentship.server.protocols.a2a.events import TaskEncoder, agent_request


def message(*parts: Part) -> Message:
    return Message(role=Role.ROLE_USER, message_id="m1", parts=list(parts))


def encoder() -> TaskEncoder:
    ids = itertools.count()
    return TaskEncoder("task-1", "ctx-1", new_id=lambda: f"id{next(ids)}")


def test_a_message_becomes_the_new_turn_of_its_context() -> None:
    data = Part(data=ParseDict({"city": "Paris"}, Value()))
    request = agent_request(message(Part(text="Weather?"), data), "ctx-1", "ada")
    turn = request.input[0].model_dump(exclude_none=True)
    assert (turn["role"], turn["content"]) == ("user", 'Weather?\n{"city": "Paris"}')
    assert request.context is not None
    assert (request.context.conversation_id, request.context.user_id) == ("ctx-1", "ada")


def test_messages_the_agent_cannot_read_are_refused() -> None:
    with pytest.raises(InvalidParamsError):
        agent_request(message(Part(text="  ")), "ctx", None)
    with pytest.raises(ContentTypeNotSupportedError):
        agent_request(message(Part(text="see"), Part(url="https://example.invalid/a.png")), "ctx", None)


def run_events() -> list:
    call = create_function_call_item("fc1", "call-7", "get_weather", '{"city": "Paris"}')
    output = create_function_call_output_item("call-7", "18°C")
    answer = {
        "type": "message",
        "id": "msg1",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hot, 18°C"}],
    }
    usage = {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    return [
        ReasoningDelta("r1", "thinking"),
        ItemDone(call),
        ItemDone(output),
        TextDelta("msg1", "Hot, "),
        TextDelta("msg1", "18°C"),
        ItemDone(answer),
        Completed([call, output, answer], usage),
    ]


def test_the_agent_s_events_become_artifacts_the_way_kagent_sends_them() -> None:
    enc = encoder()
    out = [e for event in run_events() for e in enc.feed(event)]
    call, result, first, second, whole = (MessageToDict(e) for e in out)
    assert call["artifact"]["parts"][0] == {
        "data": {"id": "call-7", "name": "get_weather", "args": {"city": "Paris"}},
        "metadata": {"kagent_type": "function_call"},
    }
    assert result["artifact"]["parts"][0]["data"] == {
        "id": "call-7",
        "name": "get_weather",
        "response": {"result": "18°C"},
    }
    assert [(e.get("append", False), e.get("lastChunk", False)) for e in (first, second, whole)] == [
        (False, False),
        (True, False),
        (False, True),
    ]
    assert whole["artifact"] == {"artifactId": "msg1", "parts": [{"text": "Hot, 18°C"}]}
    done = MessageToDict(enc.completed("tr-1"))
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    assert done["metadata"] == {
        "agentship_usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        "agentship_trace_id": "tr-1",
    }


def test_a_failure_is_a_failed_status_with_the_safe_message() -> None:
    error = HttpError(503, "upstream_error", "the model backend is unreachable", "upstream_unavailable")
    failed = MessageToDict(encoder().failed(error))
    assert failed["status"]["state"] == "TASK_STATE_FAILED"
    assert failed["status"]["message"]["parts"] == [{"text": "the model backend is unreachable"}]
    assert failed["status"]["message"]["metadata"] == {
        "error_code": "upstream_unavailable",
        "error_status": 503,
    }


def test_the_client_reads_back_the_stream_it_was_sent() -> None:
    enc = encoder()
    stream = [StreamResponse(task=enc.submitted(message(Part(text="Weather?"))))]
    for event in run_events():
        stream += [StreamResponse(artifact_update=e) for e in enc.feed(event)]
    stream.append(StreamResponse(status_update=enc.completed(None)))
    task = Task()
    for event in stream:
        fold(task, event)
    data = MessageToDict(task)
    assert task.status.state == TaskState.TASK_STATE_COMPLETED and task.id == "task-1"
    assert task_answer(data) == "Hot, 18°C"
    assert task_usage(data) == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    assert [kind for kind, _ in tool_activity(data)] == ["function_call", "function_response"]


def test_kagent_usage_and_message_answers_are_read_too() -> None:
    usage = {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}
    task = {"artifacts": [{"parts": [{"text": "hi"}], "metadata": {"kagent_usage_metadata": usage}}]}
    assert task_usage(task) == {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
    answered = fold(Task(), StreamResponse(message=Message(context_id="c", parts=[Part(text="direct")])))
    assert task_answer(MessageToDict(answered)) == "direct" and answered.context_id == "c"


def test_the_card_comes_from_the_model_config() -> None:
    config = {
        "name": "assistant",
        "instructions": "Be  concise.\nAlways.",
        "tools": ["agentship.examples.tools:get_weather", "no.such.module:tool"],
        "toolgroups": [{"name": "builtin::rag/knowledge_search"}],
        "handoffs": [{"name": "planner", "handoff_description": "Plans trips."}],
    }
    card = MessageToDict(agent_card(describe(config, "models:/a/1"), "http://agents.example/"))
    assert card["name"] == "assistant"  # the system prompt is not the card's to publish:
    assert card["description"] == "The agent assistant, served by agentship."
    assert [(s["id"], s["description"]) for s in card["skills"]] == [
        ("get_weather", "Get the current weather for a city."),
        ("tool", "no.such.module:tool"),
        ("builtin::rag/knowledge_search", "Llama Stack tool group builtin::rag/knowledge_search"),
        ("planner", "Plans trips."),
    ]
    assert [i["protocolVersion"] for i in card["supportedInterfaces"]] == ["1.0", "0.3"]
    described = describe({"name": "x", "description": "Answers questions.", "instructions": "…"}, "m")
    assert described.description == "Answers questions."
