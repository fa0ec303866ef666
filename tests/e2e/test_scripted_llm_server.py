"""The scripted model server, driven by the official openai client over real HTTP."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from agentship.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def client(scripted: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=scripted.url + "/v1", api_key="unused", max_retries=0)


def test_models_lists_the_scripted_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == ["scripted-model", "scripted-embed"]


def test_chat_completion_text_and_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="scripted-model", messages=[{"role": "user", "content": [{"type": "text", "text": "hi there"}]}]
    )
    assert reply.choices[0].message.content == "You said: hi there"
    assert reply.usage is not None and reply.usage.prompt_tokens == 2 and reply.usage.total_tokens > 2


def test_chat_completion_streams_a_tool_call(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="scripted-model",
        messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
        stream_options={"include_usage": True},
    )
    name, arguments, usage = "", "", None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                name += call.function.name or "" if call.function else ""
                arguments += call.function.arguments or "" if call.function else ""
    assert name == "get_weather"
    assert arguments == '{"city": "Oslo"}'
    assert usage is not None and usage.completion_tokens > 0


def test_responses_stream_and_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model="scripted-model", input="stream this please [[chunks=5]]") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert len(deltas) == 5
    assert "".join(deltas) == "You said: stream this please"
    assert final.output_text == "You said: stream this please"
    assert final.usage is not None and final.usage.total_tokens > 0


def test_responses_function_call_then_result(client: openai.OpenAI) -> None:
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL["function"]["parameters"]}  # type: ignore[index]
    first = client.responses.create(model="scripted-model", input="weather in Lima?", tools=[tool])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    second = client.responses.create(
        model="scripted-model",
        input=[
            {"role": "user", "content": "weather in Lima?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "warm"},
        ],
        tools=[tool],  # type: ignore[list-item]
    )
    assert second.output_text == "The get_weather tool returned: warm"


def test_failure_injection_per_request(client: openai.OpenAI, scripted: ServerProcess) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x [[fail=500]]"}])
    assert info.value.status_code == 500
    # fail=503*1 fails only the first try: a client retry succeeds.
    retrying = openai.OpenAI(base_url=scripted.url + "/v1", api_key="unused", max_retries=1)
    reply = retrying.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "y [[fail=503*1]]"}]
    )
    assert reply.choices[0].message.content == "You said: y"


def test_latency_and_recorded_requests(client: openai.OpenAI, scripted: ServerProcess) -> None:
    httpx.delete(scripted.url + "/scripted/requests")
    started = time.monotonic()
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "slow [[latency=0.4]]"}])
    assert time.monotonic() - started >= 0.4
    recorded = httpx.get(scripted.url + "/scripted/requests").json()
    assert recorded[-1]["messages"] == [
        {"role": "user", "text": "slow [[latency=0.4]]", "tool_name": None, "images": 0}
    ]


def test_bad_json_is_a_400(scripted: ServerProcess) -> None:
    reply = httpx.post(scripted.url + "/v1/chat/completions", content=b"{nope")
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == "request body is not valid JSON"
