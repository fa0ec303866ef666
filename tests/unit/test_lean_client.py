"""The lean OpenAI client sends the same bodies as openai-python's own, without its transform."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import httpx2
import openai
import pytest
from openai.types.beta import response_create_params as beta_response_params
from openai.types.chat import ChatCompletionMessageParam, completion_create_params
from openai.types.responses import response_create_params

from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool
from agentship.openai_agents.lean_client import (
    LeanAsyncOpenAI,
    instrumented,
    lean_params,
    plain_json,
    transform_free,
)

CHAT = completion_create_params.CompletionCreateParamsNonStreaming
RESPONSES = response_create_params.ResponseCreateParamsNonStreaming


def _completion(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


class Recorder:
    """A model server in a MockTransport: it records each body and answers a tool call, then text."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.bodies.append(json.loads(request.content))
        if request.url.path.endswith("/responses"):
            return httpx2.Response(
                400, json={"error": {"message": "recorded", "type": "invalid_request_error"}}
            )
        if len(self.bodies) % 2:
            call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
            return httpx2.Response(
                200, json=_completion({"role": "assistant", "content": None, "tool_calls": [call]})
            )
        return httpx2.Response(200, json=_completion({"role": "assistant", "content": "Sunny in Paris."}))

    def client(self, kind: type[openai.AsyncOpenAI]) -> openai.AsyncOpenAI:
        transport = httpx2.MockTransport(self)
        return kind(
            api_key="k", base_url="http://model.test/v1", http_client=httpx2.AsyncClient(transport=transport)
        )


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"The weather in {city} is 18C and sunny."


HISTORY: list[Any] = [
    {"role": "user", "content": "Hello"},
    {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Hi! How can I help?", "annotations": []}],
    },
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is in this picture, and the weather in Paris?"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
        ],
    },
]


async def _run_agent(kind: type[openai.AsyncOpenAI]) -> list[dict[str, Any]]:
    recorder = Recorder()
    model = OpenAIChatCompletionsModel(model="m", openai_client=recorder.client(kind))
    agent = Agent(
        name="a",
        instructions="Be brief.",
        model=model,
        tools=[weather],
        model_settings=ModelSettings(temperature=0.2, extra_body={"seed_hint": 7}),
    )
    result = await Runner.run(agent, list(HISTORY))
    assert result.final_output == "Sunny in Paris."
    return recorder.bodies


def test_an_agent_run_sends_the_same_chat_bodies_as_openai_pythons_client() -> None:
    stock, lean = asyncio.run(_run_agent(openai.AsyncOpenAI)), asyncio.run(_run_agent(LeanAsyncOpenAI))
    assert len(stock) == 2
    assert lean == stock
    second = lean[1]
    assert [m["role"] for m in second["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
    ]
    assert second["seed_hint"] == 7
    assert second["tools"][0]["function"]["name"] == "weather"


ITEMS: list[dict[str, Any]] = [
    *HISTORY,
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Look it up."}]},
    {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "18C and sunny"},
    {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
]
TOOLS = [
    {
        "type": "function",
        "name": "weather",
        "description": "The weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    }
]


@pytest.mark.parametrize("stream", [False, True])
def test_responses_bodies_are_the_same_as_openai_pythons_client(stream: bool) -> None:
    bodies = []
    for kind in (openai.AsyncOpenAI, LeanAsyncOpenAI):
        recorder = Recorder()
        call = recorder.client(kind).responses.create(
            model="m",
            input=ITEMS,
            tools=TOOLS,
            stream=stream,
            extra_body={"x": 1},  # type: ignore[arg-type]
        )
        with pytest.raises(openai.BadRequestError):
            asyncio.run(call)
        bodies.append(recorder.bodies)
    assert bodies[0] == bodies[1]
    assert bodies[1][0]["input"] == ITEMS
    assert bodies[1][0]["tools"] == TOOLS
    assert bodies[1][0]["x"] == 1


@pytest.mark.parametrize("stream", [False, True])
def test_chat_bodies_are_the_same_when_streaming_too(stream: bool) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
    bodies = []
    for kind in (openai.AsyncOpenAI, LeanAsyncOpenAI):
        recorder = Recorder()
        asyncio.run(
            recorder.client(kind).chat.completions.create(model="m", messages=messages, stream=stream)
        )
        bodies.append(recorder.bodies)
    assert bodies[0] == bodies[1] == [{"model": "m", "messages": messages, "stream": stream}]


def test_plain_lists_move_into_extra_body_and_leave_an_empty_list() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    fields = {"messages": CHAT, "tools": CHAT}
    moved = lean_params({"model": "m", "messages": messages, "extra_body": {"x": 1}}, fields)
    assert moved == {"model": "m", "messages": [], "extra_body": {"x": 1, "messages": messages}}


def test_what_is_not_plain_json_or_set_by_the_caller_keeps_the_normal_path() -> None:
    fields = {"messages": CHAT, "tools": CHAT}
    model_object = openai.types.chat.ChatCompletionMessage(role="assistant", content="Hi")
    for params in (
        {"model": "m", "messages": [model_object]},
        {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "extra_body": {"messages": []}},
        {"model": "m", "messages": ({"role": "user", "content": "Hi"},)},
        {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "extra_body": "raw"},
        {"model": "m", "messages": [{1: "not a string key"}]},
    ):
        assert lean_params(params, fields) == params


def test_plain_json_is_what_json_can_hold_as_is() -> None:
    assert plain_json([{"a": [1, 2.5, True, None, "s", {"b": []}]}])
    assert not plain_json([{"a": (1, 2)}])
    assert not plain_json([{"a": b"bytes"}])
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert plain_json(deep)


def test_only_fields_whose_types_declare_no_alias_or_format_go_lean() -> None:
    for params, field in (
        (CHAT, "messages"),
        (CHAT, "tools"),
        (completion_create_params.CompletionCreateParamsStreaming, "messages"),
        (RESPONSES, "input"),
        (RESPONSES, "tools"),
        (response_create_params.ResponseCreateParamsStreaming, "input"),
    ):
        assert transform_free(params, field), (params.__name__, field)
    # The detector finds an alias where one is declared, and a field that does not exist is not free.
    assert not transform_free(beta_response_params.ResponseCreateParamsNonStreaming, "betas")
    assert not transform_free(CHAT, "no_such_field")
    moved = lean_params(
        {"model": "m", "betas": ["responses_multi_agent=v1"]},
        {"betas": beta_response_params.ResponseCreateParamsNonStreaming},
    )
    assert moved == {"model": "m", "betas": ["responses_multi_agent=v1"]}


def test_openai_pythons_own_create_is_not_instrumented_and_mlflow_autolog_is() -> None:
    """The lean path is taken with openai-python as installed (its own decorators are not
    instrumentation), and left while mlflow.openai.autolog() wraps create."""
    import mlflow
    from openai.resources.chat import AsyncCompletions
    from openai.resources.responses import AsyncResponses

    assert not instrumented(AsyncCompletions) and not instrumented(AsyncResponses)
    mlflow.openai.autolog(log_traces=False)
    try:
        assert instrumented(AsyncCompletions) and instrumented(AsyncResponses)
    finally:
        mlflow.openai.autolog(disable=True)
    assert not instrumented(AsyncCompletions) and not instrumented(AsyncResponses)


def test_an_instrumented_create_sees_the_call_as_it_was_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """With openai-python's create wrapped (mlflow.openai.autolog(), an OpenTelemetry
    instrumentor), the wrapper is given the messages, not the moved body, under the same class name."""
    from openai.resources.chat import AsyncCompletions

    seen: list[tuple[str, dict[str, Any]]] = []
    original = AsyncCompletions.create

    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((type(self).__name__, kwargs))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(AsyncCompletions, "create", wrapper)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
    recorder = Recorder()
    asyncio.run(recorder.client(LeanAsyncOpenAI).chat.completions.create(model="m", messages=messages))
    assert seen == [("AsyncCompletions", {"model": "m", "messages": messages})]
    assert recorder.bodies == [{"model": "m", "messages": messages}]
