"""Clients for a served agent (HTTP), a registered one (in process) or any A2A agent, as a CLI
and a library.

    python serving/client.py served http://127.0.0.1:8000 "What is the weather in Paris?" [--stream]
    python serving/client.py local models:/openai-agents-assistant/1 "What is the weather in Paris?"
    python serving/client.py a2a http://127.0.0.1:8000 "What is the weather in Paris?" [--stream]

``--conversation-id ID`` (``--context-id ID`` for A2A) keeps a conversation; ``--log-to-mlflow
[--experiment NAME]`` logs each exchange to MLflow in the background (see
``serving/_exchange_log.py``). ``A2AAgent`` (``serving/_a2a_client.py``) talks to A2A agents.
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


def __getattr__(name: str) -> Any:
    """``A2AAgent`` without importing the A2A SDK (an optional extra) until it is asked for."""
    if name == "A2AAgent":
        from serving._a2a_client import A2AAgent

        return A2AAgent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _print_items(response: dict[str, Any], out: Callable[[str], None]) -> None:
    for item in response.get("output", []):
        if item.get("type") == "function_call":
            out(f"[tool call] {item['name']}({item['arguments']})")
        elif item.get("type") == "function_call_output":
            out(f"[tool result] {item['output']}")


def _tool_line(kind: str, data: Any) -> str:
    """A2A tool activity (kagent's data parts) as the served client prints it."""
    if kind == "function_call":
        return f"[tool call] {data.get('name')}({json.dumps(data.get('args', {}), ensure_ascii=False)})"
    response = data.get("response", {})
    return f"[tool result] {response.get('result', response) if isinstance(response, dict) else response}"


class _A2APrinter:
    """Prints an A2A stream as it arrives: text chunks, and tool activity on lines of their own."""

    def __init__(self) -> None:
        self.streamed: set[str] = set()
        self.current: str | None = None
        self.mid_line = False

    def _text(self, artifact_id: str, text: str) -> None:
        if self.current not in (None, artifact_id) and self.mid_line:
            print()
        self.current = artifact_id
        print(text, end="", flush=True)
        self.mid_line = self.mid_line or bool(text)

    def __call__(self, event: dict[str, Any]) -> None:
        from serving._a2a_client import tool_activity

        update = event.get("artifactUpdate")
        if not update:
            return
        artifact = update.get("artifact", {})
        artifact_id = str(artifact.get("artifactId", ""))
        if tools := tool_activity({"artifacts": [artifact]}):
            if self.mid_line:
                print()
            for kind, data in tools:
                print(_tool_line(kind, data))
            self.mid_line = False
            return
        text = "".join(str(p["text"]) for p in artifact.get("parts", []) if "text" in p)
        if update.get("append") or not update.get("lastChunk"):
            self.streamed.add(artifact_id)
            self._text(artifact_id, text)
        elif artifact_id not in self.streamed:
            self._text(artifact_id, text)


def _run_a2a(args: argparse.Namespace, logger: ExchangeLogger | None) -> int:
    from a2a.utils.errors import A2AError

    from serving._a2a_client import A2AAgent, task_answer, tool_activity

    try:
        agent = A2AAgent(args.target, args.conversation_id, logger, user_id=args.user_id)
        try:
            if args.stream:
                printer = _A2APrinter()
                for event in agent.stream(args.question):
                    printer(event)
                print()
            else:
                task = agent.ask(args.question)
                for kind, data in tool_activity(task):
                    print(_tool_line(kind, data))
                print(task_answer(task))
            print(f"context_id: {agent.context_id} (continue with --context-id)", file=sys.stderr)
        finally:
            agent.close()
    except (A2AError, RuntimeError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _run(client: _Client, question: str, stream: bool) -> int:
    try:
        if stream:
            for event in client.stream(question):
                if event.get("type") == "response.output_text.delta":
                    print(event["delta"], end="", flush=True)
                elif (
                    event.get("type") == "response.output_item.done"
                    and event["item"].get("type") != "message"
                ):
                    _print_items({"output": [event["item"]]}, print)
            print()
        else:
            response = client.ask(question)
            _print_items(response, print)
            print(answer_text(response))
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("where", choices=["served", "local", "a2a"])
    parser.add_argument("target", help="server URL (served), model URI (local) or A2A agent URL (a2a)")
    parser.add_argument("question")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--conversation-id", "--context-id", help="the conversation to continue (the A2A contextId for a2a)"
    )
    parser.add_argument("--user-id", help="a2a: the user, sent as x-user-id and logged as the trace's user")
    parser.add_argument(
        "--log-to-mlflow", action="store_true", help="log the exchange to MLflow in the background"
    )
    parser.add_argument("--experiment", default="agent-exchanges")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logger = ExchangeLogger(args.experiment) if args.log_to_mlflow else None
    try:
        if args.where == "a2a":
            return _run_a2a(args, logger)
        client: _Client = (
            ServedAgent(args.target, args.conversation_id, logger)
            if args.where == "served"
            else LocalAgent(args.target, args.conversation_id, logger)
        )
        return _run(client, args.question, args.stream)
    finally:
        if logger is not None:
            logger.close(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
