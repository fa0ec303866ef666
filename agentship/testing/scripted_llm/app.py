"""A small, deterministic, OpenAI-compatible model server: the stand-in for a real LLM.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/responses`` (each
streaming or not, with usage), ``POST /v1/embeddings``. The same routes answer under
``/v1/openai/v1`` too. Test helpers: ``GET``/``DELETE /scripted/requests`` (the recorded
requests), ``POST /scripted/config`` (change the default behaviour at run time) and
``GET /scripted/stats`` (streams and whole answers started, completed, and cancelled by the
client).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentship.openai_wire import response_object, response_usage
from agentship.testing.scripted_llm import wire
from agentship.testing.scripted_llm.rules import (
    Behaviour,
    Message,
    Reply,
    ToolSpec,
    decide,
    latest_user_text,
    parse_directives,
    split_chunks,
)

MODEL_ID = "scripted-model"
EMBEDDING_MODEL_ID = "scripted-embed"
EMBEDDING_DIM = 384


class ScriptedLLM:
    """State of one scripted server: defaults, the request log, and retry counters."""

    def __init__(self, defaults: Behaviour | None = None, log_size: int = 1000) -> None:
        self.defaults = defaults or Behaviour()
        self.requests: deque[dict[str, Any]] = deque(maxlen=log_size)
        self._failures: dict[str, int] = {}
        self._ids = (f"{i:06d}" for i in itertools.count(1))
        self.stats = {
            "streams_started": 0, "streams_completed": 0, "streams_cancelled": 0,
            "answers_started": 0, "answers_completed": 0, "answers_cancelled": 0,
        }  # fmt: skip

    def plan(
        self, path: str, body: dict[str, Any], messages: list[Message], tools: list[ToolSpec]
    ) -> tuple[Behaviour, Reply, int | None]:
        """Record the request, then return its behaviour, reply and any status to fail with."""
        behaviour, clean = parse_directives(latest_user_text(messages), self.defaults)
        self.requests.append(
            {
                "path": path,
                "model": body.get("model"),
                "stream": bool(body.get("stream")),
                "messages": [asdict(m) for m in messages],
                "tools": [t.name for t in tools],
                "tool_results": wire.tool_results(body),
                "settings": wire.settings_of(body),
            }
        )
        fail = self._should_fail(behaviour, clean)
        forced, schema, hosted = wire.steering(body)
        reply = decide(
            _strip_directives(messages), tools, behaviour, forced=forced, schema=schema, hosted=hosted
        )
        return behaviour, reply, fail

    def _should_fail(self, behaviour: Behaviour, key: str) -> int | None:
        if behaviour.fail is None:
            return None
        if behaviour.fail_times is None:
            return behaviour.fail
        seen = self._failures.get(key, 0)
        self._failures[key] = seen + 1
        return behaviour.fail if seen < behaviour.fail_times else None

    def next_id(self) -> str:
        return next(self._ids)


def _strip_directives(messages: list[Message]) -> list[Message]:
    out = []
    for m in messages:
        _, clean = parse_directives(m.text, Behaviour())
        out.append(replace(m, text=clean))
    return out


def _error(status: int, message: str) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status)


def _truncated(rid: str) -> Response:
    """A 200 whose JSON body breaks off (``malformed`` without streaming)."""
    return Response(f'{{"id": "{rid}", "object": "chat.completion", "choices": [{{"index'.encode(), 200,
                    media_type="application/json")  # fmt: skip


async def _json_body(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "request body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "request body must be a JSON object")
    return body


async def _thinking(request: Request, seconds: float, stats: dict[str, int]) -> bool:
    """Wait ``seconds`` before a whole (non-streamed) answer, as a model computing it; False
    when the client hung up meanwhile (counted as ``answers_cancelled``)."""
    stats["answers_started"] += 1
    if seconds <= 0:
        stats["answers_completed"] += 1
        return True

    async def hung_up() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    sleep, watch = asyncio.ensure_future(asyncio.sleep(seconds)), asyncio.ensure_future(hung_up())
    await asyncio.wait((sleep, watch), return_when=asyncio.FIRST_COMPLETED)
    gone = not sleep.done()
    sleep.cancel()
    watch.cancel()
    stats["answers_cancelled" if gone else "answers_completed"] += 1
    return not gone


async def _paced(pieces: list[bytes], behaviour: Behaviour, stats: dict[str, int]) -> AsyncIterator[bytes]:
    """Yield pre-built SSE frames with the configured first-token delay, pacing and stall."""
    stats["streams_started"] += 1
    finished = False
    try:
        if behaviour.ttft:
            await asyncio.sleep(behaviour.ttft)
        gap = behaviour.latency / max(1, len(pieces))
        for index, piece in enumerate(pieces):
            if behaviour.malformed and index == 1:
                yield b"data: {this is not json\n\n"
                finished = True
                return
            yield piece
            if index == 0 and behaviour.hang:
                await asyncio.sleep(behaviour.hang)
            elif gap:
                await asyncio.sleep(gap)
        finished = True
    finally:
        stats["streams_completed" if finished else "streams_cancelled"] += 1


def _chat_stream_frames(
    reply: Reply, body: dict[str, Any], rid: str, call_id: str, usage_in: int, behaviour: Behaviour
) -> list[bytes]:
    model = body.get("model") or MODEL_ID
    frames = [wire.sse(wire.chat_chunk(rid, model, {"role": "assistant", "content": ""}))]
    if reply.reasoning:  # streamed before the answer, as reasoning models do
        for piece in split_chunks(reply.reasoning, behaviour.chunks):
            frames.append(wire.sse(wire.chat_chunk(rid, model, {"reasoning_content": piece})))
    if reply.tool_name:
        head = {
            "index": 0,
            "id": call_id,
            "type": "function",
            "function": {"name": reply.tool_name, "arguments": ""},
        }
        frames.append(wire.sse(wire.chat_chunk(rid, model, {"tool_calls": [head]})))
        for piece in split_chunks(reply.arguments or "{}", behaviour.chunks):
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            frames.append(wire.sse(wire.chat_chunk(rid, model, delta)))
        finish = "tool_calls"
    else:
        for piece in split_chunks(reply.text or "", behaviour.chunks):
            frames.append(wire.sse(wire.chat_chunk(rid, model, {"content": piece})))
        finish = "stop"
    frames.append(wire.sse(wire.chat_chunk(rid, model, {}, finish)))
    if (body.get("stream_options") or {}).get("include_usage") and not behaviour.nousage:
        frames.append(wire.sse(wire.chat_usage_chunk(rid, model, usage_in, wire.reply_tokens(reply))))
    frames.append(wire.sse("[DONE]"))
    return frames


def _responses_stream_frames(
    reply: Reply,
    body: dict[str, Any],
    rid: str,
    items: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    behaviour: Behaviour,
) -> list[bytes]:
    model = body.get("model") or MODEL_ID
    seq = itertools.count()
    frames: list[dict[str, Any]] = []
    frames.append(
        {"type": "response.created", "response": response_object(rid, model, [], None, "in_progress")}
    )
    frames.append(
        {
            "type": "response.in_progress",
            "response": response_object(rid, model, [], None, "in_progress"),
        }
    )
    for index, item in enumerate(items):
        started = {**item, "status": "in_progress"}
        if item["type"] == "message":
            started["content"] = []
        if item["type"] == "reasoning":
            started = {**item, "summary": []}
        if item["type"] == "function_call":
            started["arguments"] = ""
        frames.append({"type": "response.output_item.added", "output_index": index, "item": started})
        if item["type"] == "message":
            text = item["content"][0]["text"]
            part = {"type": "output_text", "text": "", "annotations": []}
            base = {"item_id": item["id"], "output_index": index, "content_index": 0}
            frames.append({"type": "response.content_part.added", **base, "part": part})
            for piece in split_chunks(text, behaviour.chunks):
                frames.append({"type": "response.output_text.delta", **base, "delta": piece, "logprobs": []})
            frames.append({"type": "response.output_text.done", **base, "text": text, "logprobs": []})
            frames.append({"type": "response.content_part.done", **base, "part": {**part, "text": text}})
        elif item["type"] == "reasoning":
            frames += _reasoning_frames(item, index, behaviour)
        elif item["type"] == "function_call":
            base = {"item_id": item["id"], "output_index": index}
            for piece in split_chunks(item["arguments"], behaviour.chunks):
                frames.append({"type": "response.function_call_arguments.delta", **base, "delta": piece})
            frames.append(
                {"type": "response.function_call_arguments.done", **base, "arguments": item["arguments"]}
            )
        frames.append({"type": "response.output_item.done", "output_index": index, "item": item})
    frames.append({"type": "response.completed", "response": response_object(rid, model, items, usage)})
    return [wire.sse({**frame, "sequence_number": next(seq)}) for frame in frames]


def _reasoning_frames(item: dict[str, Any], index: int, behaviour: Behaviour) -> list[dict[str, Any]]:
    """A reasoning summary streamed in pieces, as OpenAI's reasoning models send it."""
    text = item["summary"][0]["text"]
    base = {"item_id": item["id"], "output_index": index, "summary_index": 0}
    part = {"type": "summary_text", "text": ""}
    frames: list[dict[str, Any]] = [{"type": "response.reasoning_summary_part.added", **base, "part": part}]
    for piece in split_chunks(text, behaviour.chunks):
        frames.append({"type": "response.reasoning_summary_text.delta", **base, "delta": piece})
    frames.append({"type": "response.reasoning_summary_text.done", **base, "text": text})
    frames.append({"type": "response.reasoning_summary_part.done", **base, "part": {**part, "text": text}})
    return frames


def create_app(llm: ScriptedLLM | None = None) -> Starlette:
    """Build the ASGI app around ``llm`` (a fresh :class:`ScriptedLLM` when omitted)."""
    state = llm or ScriptedLLM()

    async def models(request: Request) -> Response:
        data = [
            {"id": model_id, "object": "model", "created": 0, "owned_by": "scripted"}
            for model_id in (MODEL_ID, EMBEDDING_MODEL_ID)
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        if not body.get("messages"):
            return _error(400, "'messages' is required and must not be empty")
        messages, tools = wire.parse_chat_request(body)
        behaviour, reply, fail = state.plan(request.url.path, body, messages, tools)
        if fail:
            await asyncio.sleep(behaviour.ttft)
            return _error(fail, f"scripted failure {fail}")
        rid, call_id = f"chatcmpl-{state.next_id()}", f"call_{state.next_id()}"
        usage_in = wire.prompt_tokens(messages)
        if body.get("stream"):
            frames = _chat_stream_frames(reply, body, rid, call_id, usage_in, behaviour)
            return StreamingResponse(_paced(frames, behaviour, state.stats), media_type="text/event-stream")
        await _thinking(request, behaviour.ttft + behaviour.latency + behaviour.hang, state.stats)
        if behaviour.malformed:
            return _truncated(rid)
        return JSONResponse(
            wire.chat_completion(reply, body.get("model") or MODEL_ID, rid, call_id, usage_in)
        )

    async def responses(request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        if body.get("input") in (None, "", []):
            return _error(400, "'input' is required and must not be empty")
        messages, tools = wire.parse_responses_request(body)
        behaviour, reply, fail = state.plan(request.url.path, body, messages, tools)
        if fail:
            await asyncio.sleep(behaviour.ttft)
            return _error(fail, f"scripted failure {fail}")
        rid = f"resp_{state.next_id()}"
        items = wire.response_items(reply, iter(state.next_id, None))
        usage = (
            None
            if behaviour.nousage
            else response_usage(wire.prompt_tokens(messages), wire.reply_tokens(reply))
        )
        if body.get("stream"):
            frames = _responses_stream_frames(reply, body, rid, items, usage, behaviour)
            return StreamingResponse(_paced(frames, behaviour, state.stats), media_type="text/event-stream")
        await _thinking(request, behaviour.ttft + behaviour.latency + behaviour.hang, state.stats)
        if behaviour.malformed:
            return _truncated(rid)
        return JSONResponse(response_object(rid, body.get("model") or MODEL_ID, items, usage))

    async def embeddings(request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else list(raw or [])
        data = [{"object": "embedding", "index": i, "embedding": embed(str(t))} for i, t in enumerate(texts)]
        tokens = sum(len(str(t).split()) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or MODEL_ID,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats)

    async def recorded(request: Request) -> Response:
        if request.method == "DELETE":
            state.requests.clear()
            return JSONResponse({"cleared": True})
        return JSONResponse(list(state.requests))

    async def configure(request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        try:
            state.defaults = replace(state.defaults, **body)
        except TypeError as exc:
            return _error(400, f"unknown behaviour field: {exc}")
        return JSONResponse(asdict(state.defaults))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/health", health),
        Route("/scripted/requests", recorded, methods=["GET", "DELETE"]),
        Route("/scripted/config", configure, methods=["POST"]),
        Route("/scripted/stats", stats),
    ]
    for prefix in ("/v1", "/v1/openai/v1"):
        routes += [
            Route(f"{prefix}/models", models),
            Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]),
            Route(f"{prefix}/responses", responses, methods=["POST"]),
            Route(f"{prefix}/embeddings", embeddings, methods=["POST"]),
        ]
    return Starlette(routes=routes)


def embed(text: str) -> list[float]:
    """A deterministic bag-of-words embedding: texts sharing words point the same way."""
    vector = [0.0] * EMBEDDING_DIM
    for word in text.lower().split():
        digest = hashlib.sha256(word.strip(".,;:!?\"'()").encode()).digest()
        vector[digest[0] % EMBEDDING_DIM] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]
