"""llama-cpp-python's OpenAI-compatible server, also taking OpenAI's structured-output requests.

Run it with the real-model venv's interpreter (``scripts/real_model_env.sh``), with the flags of
``python -m llama_cpp.server``::

    DIR/bin/python agentship/testing/llama_cpp_server.py --model DIR/model.gguf --model_alias gemma3 \\
        --chat_format chatml-function-calling --host 127.0.0.1 --port 18600

llama-cpp-python constrains a response to a JSON schema with ``response_format: {"type":
"json_object", "schema": …}``, but refuses OpenAI's own form, ``{"type": "json_schema",
"json_schema": {"schema": …}}``, and with HTTP 500: clients that fall back to unstructured
output on a 400 (MLflow's judges and conversation simulator do) cannot use it. It also refuses
an assistant message whose ``content`` is null, which is how OpenAI's clients (the Agents SDK
among them) send a turn that only called tools. This wraps its app in an ASGI middleware that
rewrites both into what it accepts, and bounds the strings of a requested schema
(:data:`MAX_JSON_STRING`). Nothing else changes.

It imports nothing from agentship: the real-model venv has only llama-cpp-python.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

type Scope = MutableMapping[str, Any]
type Message = MutableMapping[str, Any]
type Receive = Callable[[], Awaitable[Message]]
type Send = Callable[[Message], Awaitable[None]]
type ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


MAX_JSON_STRING = 600
"""The longest string a JSON-constrained answer may hold unless its schema says otherwise. Under
the grammar a small model can ramble inside a string until ``max_tokens`` and never close the
JSON; bounded, it always answers with a whole object."""


JSON_STRING_PATTERN = '^[^"\\\\<]{0,%d}$'
"""What a JSON-constrained string may hold: no ``<``, so no chat-template token (``<|im_end|>``),
which llama-cpp-python takes as a stop sequence and which ends the answer in mid-string (seen:
``{"result": "none", "rationale": "None},<|im_start|>assistant``); no quote or backslash, so the
string cannot close or escape early. Bounded in length (:data:`MAX_JSON_STRING`)."""


def _bounded(schema: Any) -> Any:
    """``schema`` with each free string (no enum, no pattern of its own) bounded in length and
    kept free of ``<`` (:data:`JSON_STRING_PATTERN`), nested properties too."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if out.get("type") == "string" and "enum" not in out and "pattern" not in out:
        out.setdefault("maxLength", MAX_JSON_STRING)
        out["pattern"] = JSON_STRING_PATTERN % out["maxLength"]
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _bounded(v) for k, v in out["properties"].items()}
    if "items" in out:
        out["items"] = _bounded(out["items"])
    return out


def _response_format(wanted: Any) -> Any:
    """OpenAI's ``json_schema`` response format as llama-cpp-python's ``json_object`` + schema."""
    if not isinstance(wanted, dict) or wanted.get("type") != "json_schema":
        return wanted
    spec = wanted.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return (
        {"type": "json_object", "schema": _bounded(schema)}
        if isinstance(schema, dict)
        else {"type": "json_object"}
    )


def _message(message: Any) -> Any:
    """An assistant message with tool calls and ``content: null`` (as OpenAI's clients send it)
    with ``""`` instead: llama-cpp-python's request model wants a string."""
    if isinstance(message, dict) and message.get("role") == "assistant" and message.get("content") is None:
        return {**message, "content": ""}
    return message


def rewrite_request(body: dict[str, Any]) -> dict[str, Any]:
    """A chat-completion request in the forms llama-cpp-python accepts. Pure."""
    out = dict(body)
    if "response_format" in out:
        out["response_format"] = _response_format(out["response_format"])
    if isinstance(out.get("messages"), list):
        out["messages"] = [_message(m) for m in out["messages"]]
    return out


class StructuredOutputs:
    """ASGI middleware: rewrites chat-completion request bodies with :func:`rewrite_request`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].endswith("/chat/completions")
        ):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            body = json.loads(raw)
            if isinstance(body, dict):
                raw = json.dumps(rewrite_request(body)).encode()
        except ValueError:
            pass  # the app answers a malformed body itself
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()  # the client's disconnect, when it comes
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app(scope, replay, send)


def main() -> None:
    import llama_cpp.server.__main__ as server

    create_app = server.create_app
    server.create_app = lambda **kwargs: StructuredOutputs(create_app(**kwargs))  # type: ignore[assignment]
    server.main()


if __name__ == "__main__":
    main()
