"""CPU per model call of openai-python's client and of agentship's lean client, by history size.

    .venv/bin/python bench/lean_client.py [--calls 300]

Each call goes through the whole client (request building, a mock transport, the answer's
parsing), so the figures are what a model call costs the serving process before and after the
network. The history is an agent's: a tool call, its output and a 200-word answer per turn.
Chat Completions and Responses, each with the same body through both clients.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx2  # noqa: E402
import openai  # noqa: E402

from agentship.openai_agents.lean_client import LeanAsyncOpenAI  # noqa: E402

ANSWER = " ".join(["word"] * 200)
CHAT_ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
}  # fmt: skip
RESPONSE_ANSWER = {
    "id": "resp_1", "object": "response", "created_at": 1, "model": "m", "status": "completed",
    "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "ok", "annotations": []}]}],
    "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
}  # fmt: skip
CHAT_TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip
RESPONSES_TOOLS = [{"type": "function", **CHAT_TOOLS[0]["function"], "strict": True}]


def chat_history(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are helpful."}]
    for t in range(turns):
        call = {
            "id": f"call_{t}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
        messages += [
            {"role": "user", "content": f"What is the weather in Paris? (turn {t})"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {
                "role": "tool",
                "tool_call_id": f"call_{t}",
                "content": "The weather in Paris is 18C and sunny.",
            },
            {"role": "assistant", "content": ANSWER},
        ]
    return messages


def responses_history(turns: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for t in range(turns):
        items += [
            {"role": "user", "content": f"What is the weather in Paris? (turn {t})"},
            {"type": "function_call", "call_id": f"call_{t}", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": f"call_{t}", "output": "18C and sunny"},
            {"type": "message", "id": f"msg_{t}", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": ANSWER, "annotations": []}]},
        ]  # fmt: skip
    return items


def client(kind: type[openai.AsyncOpenAI], answer: dict[str, Any]) -> openai.AsyncOpenAI:
    transport = httpx2.MockTransport(lambda _: httpx2.Response(200, json=answer))
    return kind(
        api_key="k", base_url="http://model.test/v1", http_client=httpx2.AsyncClient(transport=transport)
    )


async def cpu_ms(call: Any, calls: int) -> float:
    for _ in range(max(10, calls // 10)):
        await call()
    started = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - started) / calls * 1000


async def per_call(kind: type[openai.AsyncOpenAI], api: str, turns: int, calls: int) -> float:
    if api == "chat":
        chat, messages = client(kind, CHAT_ANSWER), chat_history(turns)
        return await cpu_ms(
            lambda: chat.chat.completions.create(model="m", messages=messages, tools=CHAT_TOOLS), calls
        )  # type: ignore[arg-type]
    responses, items = client(kind, RESPONSE_ANSWER), responses_history(turns)
    return await cpu_ms(
        lambda: responses.responses.create(model="m", input=items, tools=RESPONSES_TOOLS), calls
    )  # type: ignore[arg-type]


async def main(calls: int) -> None:
    print(f"{'call':<10} {'turns':>5} {'openai-python':>14} {'lean':>6}  (ms of CPU per call)")
    for api in ("chat", "responses"):
        for turns in (1, 3, 5):
            stock = await per_call(openai.AsyncOpenAI, api, turns, calls)
            lean = await per_call(LeanAsyncOpenAI, api, turns, calls)
            print(f"{api:<10} {turns:>5} {stock:>14.2f} {lean:>6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300)
    asyncio.run(main(parser.parse_args().calls))
