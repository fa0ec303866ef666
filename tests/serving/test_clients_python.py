"""The Python clients people use, against a real ``python -m serving``'s ``/responses``.

openai-python (``responses.create``, ``responses.stream()``, ``AsyncOpenAI``), openai-agents as
a client (``OpenAIResponsesModel`` with ``Runner.run`` and ``Runner.run_streamed``) and
langchain-openai (``ChatOpenAI(use_responses_api=True)``). Each asks a plain question, a
question the agent answers with its own tool, and a second turn built the way that client
builds one. The agent's tools run on the server, so no client may see them as its own to run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from agents.items import MessageOutputItem, ToolCallItem
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_openai import ChatOpenAI
from openai.types.responses import Response

from agents import Agent, OpenAIResponsesModel, RunConfig, Runner
from tests.serving.clients import MODEL, PARIS, TOOL_ANSWER, Target, assert_history_reached_the_model, marker

pytestmark = pytest.mark.e2e


# -- openai-python ------------------------------------------------------------------------------
def _check_stream(events: list[Any], final: Response) -> None:
    """The event sequence api.openai.com sends, with the text that the deltas carried."""
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(set(numbers)), "sequence_number must increase"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text
    added = {e.output_index: e.item.id for e in events if e.type == "response.output_item.added"}
    done = {e.output_index: e.item.id for e in events if e.type == "response.output_item.done"}
    assert added == done == {i: item.id for i, item in enumerate(final.output)}


def _openai_turn(target: Target, mode: str, input: Any) -> Response:
    if mode == "create":
        client = openai.OpenAI(base_url=target.url, api_key="unused", max_retries=0)
        return client.responses.create(model=MODEL, input=input)
    if mode == "stream":
        client = openai.OpenAI(base_url=target.url, api_key="unused", max_retries=0)
        with client.responses.stream(model=MODEL, input=input) as stream:
            events = list(stream)
            final = stream.get_final_response()
        _check_stream(events, final)
        return final

    async def run() -> Response:
        client = openai.AsyncOpenAI(base_url=target.url, api_key="unused", max_retries=0)
        created = await client.responses.create(model=MODEL, input=input)
        async with client.responses.stream(model=MODEL, input=input) as stream:
            events = [event async for event in stream]
            final = await stream.get_final_response()
        _check_stream(events, final)
        assert [o.type for o in created.output] == [o.type for o in final.output]
        return final

    return asyncio.run(run())


def _check_mcp_call(target: Target, response: Response) -> None:
    calls = [o for o in response.output if o.type == "mcp_call"]
    assert len(calls) == 1
    call = calls[0]
    assert (call.name, call.server_label, call.output, call.status) == (
        "get_weather",
        "agent",
        PARIS,
        "completed",
    )
    assert call.arguments == '{"city":"Paris"}' or '"Paris"' in call.arguments


@pytest.mark.parametrize("mode", ["create", "stream", "async"])
def test_openai_python(target: Target, mode: str) -> None:
    mark = marker()
    plain = _openai_turn(target, mode, f"Hello there {mark}")
    assert plain.output_text == f"You said: Hello there {mark}"
    assert [o.type for o in plain.output] == target.types("message")
    assert plain.model == MODEL and plain.status == "completed" and plain.id.startswith("resp_")
    assert plain.usage is not None and plain.usage.total_tokens > 0

    question = {"role": "user", "content": f"What is the weather in Paris? {mark}"}
    tool = _openai_turn(target, mode, [question])
    assert tool.output_text == TOOL_ANSWER
    assert [o.type for o in tool.output] == target.types("mcp_call", "message")
    _check_mcp_call(target, tool)
    if target.reasoning:
        assert all(o.summary and o.summary[0].text for o in tool.output if o.type == "reasoning")

    # The openai-python way: the earlier output items go back in the input.
    history = [question, *[o.model_dump(exclude_none=True) for o in tool.output]]
    second = _openai_turn(target, mode, [*history, {"role": "user", "content": f"Thanks {mark}-second"}])
    assert second.output_text == f"You said: Thanks {mark}-second"
    assert_history_reached_the_model(target, mark)


# -- openai-agents as a client ------------------------------------------------------------------
def _client_agent(target: Target) -> Agent[Any]:
    client = openai.AsyncOpenAI(base_url=target.url, api_key="unused", max_retries=0)
    return Agent(name="client", model=OpenAIResponsesModel(model=MODEL, openai_client=client))


async def _agents_turn(agent: Agent[Any], streamed: bool, input: Any) -> tuple[Any, list[str]]:
    config = RunConfig(tracing_disabled=True)
    if not streamed:
        return await Runner.run(agent, input, run_config=config, max_turns=3), []
    result = Runner.run_streamed(agent, input, run_config=config, max_turns=3)
    deltas = [
        event.data.delta
        async for event in result.stream_events()
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta"
    ]
    return result, deltas


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
def test_openai_agents_as_a_client(target: Target, streamed: bool) -> None:
    async def conversation() -> None:
        agent = _client_agent(target)
        mark = marker()
        plain, deltas = await _agents_turn(agent, streamed, f"Hello there {mark}")
        assert plain.final_output == f"You said: Hello there {mark}"
        assert not streamed or "".join(deltas) == plain.final_output

        tool, deltas = await _agents_turn(agent, streamed, f"What is the weather in Paris? {mark}")
        assert tool.final_output == TOOL_ANSWER
        assert not streamed or "".join(deltas) == TOOL_ANSWER
        calls = [i for i in tool.new_items if isinstance(i, ToolCallItem)]
        assert [c.raw_item.type for c in calls] == ["mcp_call"]  # done on the server, not run here
        assert calls[0].raw_item.output == PARIS
        assert isinstance(tool.new_items[-1], MessageOutputItem)
        assert len(tool.raw_responses) == 1  # one request: the client had nothing to run

        second, _ = await _agents_turn(
            agent, streamed, [*tool.to_input_list(), {"role": "user", "content": f"Thanks {mark}-second"}]
        )
        assert second.final_output == f"You said: Thanks {mark}-second"
        assert_history_reached_the_model(target, mark)

    asyncio.run(conversation())


# -- langchain-openai ---------------------------------------------------------------------------
def _langchain_turn(llm: ChatOpenAI, streamed: bool, messages: list[BaseMessage]) -> AIMessage:
    if not streamed:
        reply = llm.invoke(messages)
        assert isinstance(reply, AIMessage)
        return reply
    chunks = list(llm.stream(messages))
    assert len(chunks) > 1
    merged: AIMessageChunk = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk  # type: ignore[assignment]
    return merged


@pytest.mark.parametrize("streamed", [False, True], ids=["invoke", "stream"])
def test_langchain_openai(target: Target, streamed: bool) -> None:
    llm = ChatOpenAI(
        model=MODEL, base_url=target.url, api_key="unused", use_responses_api=True, max_retries=0
    )
    mark = marker()
    plain = _langchain_turn(llm, streamed, [HumanMessage(f"Hello there {mark}")])
    assert plain.text == f"You said: Hello there {mark}" and plain.tool_calls == []

    question = HumanMessage(f"What is the weather in Paris? {mark}")
    tool = _langchain_turn(llm, streamed, [question])
    assert tool.text == TOOL_ANSWER
    assert tool.tool_calls == []  # a LangGraph tool node has nothing to run again
    server_calls = [b for b in tool.content_blocks if b["type"] == "server_tool_call"]
    results = [b for b in tool.content_blocks if b["type"] == "server_tool_result"]
    assert [(c["name"], c["extras"]["tool_name"], c["args"]) for c in server_calls] == [
        ("remote_mcp", "get_weather", {"city": "Paris"})
    ]
    assert [r.get("output") for r in results] == [PARIS]

    second = _langchain_turn(llm, streamed, [question, tool, HumanMessage(f"Thanks {mark}-second")])
    assert second.text == f"You said: Thanks {mark}-second"
    assert_history_reached_the_model(target, mark)
