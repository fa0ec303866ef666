"""The client command: ask a served agent (HTTP), a logged one (in process) or any A2A agent.

    agentship client served http://127.0.0.1:8000 "What is the weather in Paris?" [--stream]
    agentship client local models:/openai-agents-assistant/1 "What is the weather in Paris?"
    agentship client a2a http://127.0.0.1:8000 "What is the weather in Paris?" [--stream]

(From a checkout, ``python serving/client.py`` is the same command.) ``--conversation-id ID``
(``--context-id ID`` for A2A) keeps a conversation; ``--api-key KEY`` (or
``$AGENTSHIP_API_KEY``) is sent as a bearer key; ``--log-to-mlflow [--experiment NAME]`` logs
each exchange to MLflow in the background (:mod:`agentship.client.exchange_log`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import httpx

from agentship.client.base import AgentClient, answer_text
from agentship.client.exchange_log import ExchangeLogger


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
        from agentship.client.a2a import tool_activity

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

    from agentship.client.a2a import A2AAgent, task_answer, tool_activity

    try:
        agent = A2AAgent(
            args.target, args.conversation_id, logger, user_id=args.user_id, api_key=args.api_key
        )
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


def _run(client: AgentClient, question: str, stream: bool) -> int:
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


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
        "--api-key", help="a bearer key for a server that requires one (default: $AGENTSHIP_API_KEY)"
    )
    parser.add_argument(
        "--log-to-mlflow", action="store_true", help="log the exchange to MLflow in the background"
    )
    parser.add_argument("--experiment", default="agent-exchanges")
    return parser


def _client(args: argparse.Namespace, logger: ExchangeLogger | None) -> AgentClient:
    if args.where == "served":
        from agentship.client.served import ServedAgent

        return ServedAgent(args.target, args.conversation_id, logger, api_key=args.api_key)
    from agentship.client.local import LocalAgent

    return LocalAgent(args.target, args.conversation_id, logger)


def main(argv: list[str] | None = None, prog: str = "agentship client") -> int:
    args = _parser(prog).parse_args(argv)
    logger = ExchangeLogger(args.experiment) if args.log_to_mlflow else None
    try:
        if args.where == "a2a":
            return _run_a2a(args, logger)
        client = _client(args, logger)
        try:
            return _run(client, args.question, args.stream)
        finally:
            client.close()
    finally:
        if logger is not None:
            logger.close(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
