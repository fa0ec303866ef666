"""llama-cpp-python's OpenAI-compatible server, also taking OpenAI's structured-output requests.

Run it with the real-model venv's interpreter (``scripts/real_model_env.sh``), with the flags of
``python -m llama_cpp.server``::

    DIR/bin/python agentship/testing/llama_cpp_server.py --model DIR/model.gguf --model_alias gemma3 \\
        --chat_format chatml-function-calling --host 127.0.0.1 --port 18600

llama-cpp-python constrains a response to a JSON schema with ``response_format: {"type":
"json_object", "schema": …}``, but refuses OpenAI's own form, ``{"type": "json_schema",
"json_schema": {"schema": …}}``, and with HTTP 500: clients that fall back to unstructured
output on a 400 (MLflow's judges and conversation simulator do) cannot use it. This wraps its
app in an ASGI middleware that rewrites the second form into the first. Nothing else changes.

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


def rewrite_response_format(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ``json_schema`` response format as llama-cpp-python's ``json_object`` + schema."""
    wanted = body.get("response_format")
    if not isinstance(wanted, dict) or wanted.get("type") != "json_schema":
        return body
    spec = wanted.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    rewritten: dict[str, Any] = {"type": "json_object"}
    if isinstance(schema, dict):
        rewritten["schema"] = schema
    return {**body, "response_format": rewritten}


class StructuredOutputs:
    """ASGI middleware: rewrites chat-completion request bodies with :func:`rewrite_response_format`."""

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
                raw = json.dumps(rewrite_response_format(body)).encode()
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
