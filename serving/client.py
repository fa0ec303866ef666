"""Clients for a served agent (HTTP) or a registered one (in process), as a CLI and a library.

    python serving/client.py served http://127.0.0.1:8000 "What is the weather in Paris?" [--stream]
    python serving/client.py local models:/openai-agents-assistant/1 "What is the weather in Paris?"

``--conversation-id ID`` keeps a conversation; ``--log-to-mlflow [--experiment NAME]`` logs each
exchange to MLflow in the background (see ``serving/_exchange_log.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable, not serving/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import httpx

from agentship.events import reduce_mlflow
from serving._exchange_log import Exchange, ExchangeLogger


def answer_text(response: dict[str, Any]) -> str:
    texts = [
        "".join(part.get("text", "") for part in item.get("content", []))
        for item in response.get("output", [])
        if item.get("type") == "message"
    ]
    return texts[-1] if texts else ""


class _Conversation:
    """History kept by the client, sent whole each time (stateless agents need it)."""

    def __init__(self, conversation_id: str | None) -> None:
        self.id = conversation_id or f"session-{uuid.uuid4().hex[:12]}"
        self.explicit = conversation_id is not None
        self.history: list[dict[str, Any]] = []

    def request(self, question: str, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "input": [*self.history, {"role": "user", "content": question}],
            "stream": stream,
        }
        if self.explicit:
            body["context"] = {"conversation_id": self.id}
        return body

    def record(self, question: str, response: dict[str, Any]) -> None:
        self.history.append({"role": "user", "content": question})
        self.history.extend(item for item in response.get("output", []) if item.get("type") != "reasoning")


class _Client:
    def __init__(
        self, conversation_id: str | None, logger: ExchangeLogger | None, agent: dict[str, Any]
    ) -> None:
        self.conversation = _Conversation(conversation_id)
        self.logger = logger
        self.agent = agent

    def _events(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def stream(self, question: str) -> Iterator[dict[str, Any]]:
        """Yield the agent's stream events as they arrive; the exchange is recorded at the end."""
        started = time.monotonic()
        events: list[dict[str, Any]] = []
        for event in self._events(self.conversation.request(question, stream=True)):
            if event.get("type") == "error":
                raise RuntimeError(f"{event.get('code')}: {event.get('message')}")
            events.append(event)
            yield event
        self._finish(question, reduce_mlflow(events).model_dump(exclude_none=True), started)

    def ask(self, question: str) -> dict[str, Any]:
        started = time.monotonic()
        response = self._complete(self.conversation.request(question, stream=False))
        self._finish(question, response, started)
        return response

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _finish(self, question: str, response: dict[str, Any], started: float) -> None:
        latency_ms = (time.monotonic() - started) * 1000
        self.conversation.record(question, response)
        if self.logger is not None:
            self.logger.submit(
                Exchange(
                    question,
                    answer_text(response),
                    response,
                    latency_ms,
                    self.conversation.id,
                    list(self.conversation.history),
                    self.agent,
                )
            )


class ServedAgent(_Client):
    """An agent behind ``python -m serving`` or ``mlflow models serve`` (``/invocations``)."""

    def __init__(
        self,
        url: str,
        conversation_id: str | None = None,
        logger: ExchangeLogger | None = None,
        timeout: float = 300,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout)
        agent: dict[str, Any] = {}
        try:
            agent = self._http.get(f"{self.url}/version").json().get("agent") or {}
        except (httpx.HTTPError, ValueError):
            agent = {}  # mlflow models serve has no /version
        super().__init__(conversation_id, logger, agent)

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = self._http.post(f"{self.url}/invocations", json=body)
        if reply.status_code != 200:
            raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:1000]}")
        return dict(reply.json())

    def _events(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        with self._http.stream("POST", f"{self.url}/invocations", json=body) as reply:
            if reply.status_code != 200:
                raise RuntimeError(
                    f"HTTP {reply.status_code}: {reply.read().decode(errors='replace')[:1000]}"
                )
            for line in reply.iter_lines():
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    yield json.loads(line[5:])


class LocalAgent(_Client):
    """A logged or registered agent loaded in this process with ``mlflow.pyfunc.load_model``."""

    def __init__(
        self, model_uri: str, conversation_id: str | None = None, logger: ExchangeLogger | None = None
    ) -> None:
        from serving._runner import ModelRunner

        self.runner = ModelRunner(model_uri)
        self.model = self.runner.pyfunc
        super().__init__(conversation_id, logger, self.runner.agent_summary())

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.model.predict(body))

    def _events(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield from self.model.predict_stream(body)


def _print_items(response: dict[str, Any], out: Callable[[str], None]) -> None:
    for item in response.get("output", []):
        if item.get("type") == "function_call":
            out(f"[tool call] {item['name']}({item['arguments']})")
        elif item.get("type") == "function_call_output":
            out(f"[tool result] {item['output']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("where", choices=["served", "local"])
    parser.add_argument("target", help="server URL (served) or model URI (local)")
    parser.add_argument("question")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--conversation-id")
    parser.add_argument(
        "--log-to-mlflow", action="store_true", help="log the exchange to MLflow in the background"
    )
    parser.add_argument("--experiment", default="agent-exchanges")
    args = parser.parse_args(argv)
    logger = ExchangeLogger(args.experiment) if args.log_to_mlflow else None
    client: _Client = (
        ServedAgent(args.target, args.conversation_id, logger)
        if args.where == "served"
        else LocalAgent(args.target, args.conversation_id, logger)
    )
    try:
        if args.stream:
            for event in client.stream(args.question):
                if event.get("type") == "response.output_text.delta":
                    print(event["delta"], end="", flush=True)
                elif (
                    event.get("type") == "response.output_item.done"
                    and event["item"].get("type") != "message"
                ):
                    _print_items({"output": [event["item"]]}, print)
            print()
        else:
            response = client.ask(args.question)
            _print_items(response, print)
            print(answer_text(response))
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if logger is not None:
            logger.close(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
