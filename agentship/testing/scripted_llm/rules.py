"""The scripted model's behaviour: pure functions from a normalized request to a reply.

The rule, in full (the README repeats it):

1. If the last message is a tool result, the model answers with text that quotes it:
   ``The <tool> tool returned: <output>``.
2. Otherwise, if tools are offered and the latest user message names one of them (its name,
   or its name without a leading ``get_``/``fetch_``/``lookup_``/``search_``/``find_``; as
   whole words, case-insensitive, ``_`` and spaces interchangeable), the model calls the
   first such tool: "What is the weather in Paris?" calls ``get_weather``. The arguments are the first JSON object in the message if there is one;
   otherwise each required string parameter gets the message's last capitalized word (or its
   last word) and each required number parameter the message's numbers in order.
3. Otherwise it answers ``You said: <latest user text>``.

Requests can steer it as they would a real model: a forced ``tool_choice`` (a tool's name, or
``required``) calls that tool; a JSON-schema response format gets JSON that fits the schema
(strings from the message's last capitalized word, numbers from its numbers); offered hosted
tools run when the message asks for them ("search the web", "search the files", "run code").

A Llama Guard prompt (a Llama Stack safety shield's check, "Task: Check if there is unsafe
content ...") is answered ``safe``, or ``unsafe`` / ``S1`` when it carries the ``unsafe``
directive (the guarded conversation quotes the user's message, directives and all).

Directives in the latest user message, written ``[[key=value key2=value2]]``, change one
request: ``ttft`` (seconds before the first token), ``latency`` (seconds spread over the
chunks), ``chunks`` (how many pieces a text is streamed in), ``fail`` (an HTTP status to
answer with, ``fail=503*2`` for the first two tries only), ``hang`` (seconds to stall after the
first chunk), ``malformed`` (send a broken stream, or a JSON body that breaks off), ``reason`` (stream a reasoning summary before the
answer), ``nousage`` (report no token usage, as llama.cpp's streams do), ``unsafe`` (a safety
shield's check of this message finds it unsafe), ``words`` (pad a text answer with that many
words: a long answer).
Directives are removed from the text the model echoes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

_DIRECTIVE_RE = re.compile(r"\[\[([^\]]*)\]\]")
_JSON_OBJECT_RE = re.compile(r"\{.*\}", re.DOTALL)
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Behaviour:
    """Timing and fault settings for one request (server defaults, then directives)."""

    ttft: float = 0.0
    latency: float = 0.0
    chunks: int = 4
    fail: int | None = None
    fail_times: int | None = None
    hang: float = 0.0
    malformed: bool = False
    reason: bool = False
    nousage: bool = False
    badjson: bool = False
    unsafe: bool = False
    words: int = 0
    """Pad a text answer with this many words (a long answer, for benchmarks)."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """A request message reduced to what the rules read."""

    role: Literal["system", "user", "assistant", "tool"]
    text: str = ""
    tool_name: str | None = None
    images: int = 0  # image parts in the content


@dataclass(frozen=True)
class Reply:
    """What the scripted model answers: a text, or one tool call; optionally a reasoning."""

    text: str | None = None
    tool_name: str | None = None
    arguments: str | None = None
    reasoning: str | None = None
    hosted_call: dict[str, Any] | None = None
    """An output item for a hosted tool the endpoint "ran" (web_search_call, …), before the text."""


def parse_directives(text: str, base: Behaviour) -> tuple[Behaviour, str]:
    """Apply ``[[key=value]]`` directives found in ``text`` to ``base``; return the clean text."""
    updates: dict[str, Any] = {}
    for block in _DIRECTIVE_RE.findall(text):
        for token in block.split():
            key, _, value = token.partition("=")
            if key in ("ttft", "latency", "hang"):
                updates[key] = float(value)
            elif key == "chunks":
                updates[key] = max(1, int(value))
            elif key == "words":
                updates[key] = max(0, int(value))
            elif key == "fail":
                status, _, times = value.partition("*")
                updates["fail"] = int(status)
                updates["fail_times"] = int(times) if times else None
            elif key in ("malformed", "reason", "nousage", "badjson", "unsafe"):
                updates[key] = value.lower() not in ("0", "false", "no")
    clean = _DIRECTIVE_RE.sub("", text).strip()
    return replace(base, **updates), clean


def latest_user_text(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.text
    return ""


GUARD_PROMPT = "Task: Check if there is unsafe content"

_VERB_PREFIX = re.compile(r"^(get|fetch|lookup|search|find)_")


def _mentions(text: str, tool_name: str) -> bool:
    for name in {tool_name.lower(), _VERB_PREFIX.sub("", tool_name.lower())}:
        spaced = re.escape(name).replace("_", "[ _]")
        if re.search(rf"(?<![\w]){spaced}(?![\w])", text.lower()):
            return True
    return False


def _guess_arguments(text: str, parameters: dict[str, Any]) -> dict[str, Any]:
    match = _JSON_OBJECT_RE.search(text)
    if match:
        try:
            parsed = json.loads(match.group(0))
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    words = [w.strip(".,;:!?\"'()") for w in text.split()]
    words = [w for w in words if w]
    capitalized = [w for w in words[1:] if w[:1].isupper()]
    word = capitalized[-1] if capitalized else (words[-1] if words else "")
    numbers = [float(n) if "." in n else int(n) for n in _NUMBER_RE.findall(text)]
    props: dict[str, Any] = parameters.get("properties", {}) or {}
    args: dict[str, Any] = {}
    for name in parameters.get("required", []) or []:
        kind = (props.get(name) or {}).get("type")
        if kind in ("number", "integer"):
            args[name] = numbers.pop(0) if numbers else 0
        else:
            args[name] = word
    return args


def fill_schema(schema: dict[str, Any], text: str) -> Any:
    """A value that fits a JSON schema, taken from ``text`` where it can be."""
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: fill_schema(sub, text) for name, sub in props.items()}
    if kind == "array":
        return [fill_schema(schema.get("items") or {"type": "string"}, text)]
    if kind in ("number", "integer"):
        numbers = _NUMBER_RE.findall(text)
        return (float(numbers[0]) if kind == "number" else int(float(numbers[0]))) if numbers else 0
    if kind == "boolean":
        return True
    return _guess_arguments(text, {"properties": {"v": {"type": "string"}}, "required": ["v"]})["v"]


_HOSTED_ASKS = {
    "web_search": "search the web",
    "file_search": "search the files",
    "code_interpreter": "run code",
}


def _hosted_call(kind: str, text: str) -> Reply:
    query = text.lower().split(_HOSTED_ASKS[kind], 1)[-1].strip(" .?:").removeprefix("for ").strip() or text
    if kind == "web_search":
        item = {
            "type": "web_search_call",
            "status": "completed",
            "action": {"type": "search", "query": query},
        }
        return Reply(text=f"I searched the web for {query}.", hosted_call=item)
    if kind == "file_search":
        result = {
            "file_id": "file_notes",
            "filename": "notes.txt",
            "score": 0.9,
            "text": f"Notes about {query}.",
        }
        found: dict[str, Any] = {
            "type": "file_search_call",
            "status": "completed",
            "queries": [query],
            "results": [result],
        }
        return Reply(text=f"The files say: Notes about {query}.", hosted_call=found)
    ran: dict[str, Any] = {
        "type": "code_interpreter_call",
        "status": "completed",
        "code": "print(6 * 7)",
        "container_id": "cntr_scripted",
        "outputs": [{"type": "logs", "logs": "42"}],
    }
    return Reply(text="The code printed 42.", hosted_call=ran)


def _padded(reply: Reply, words: int) -> Reply:
    if not words or reply.text is None:
        return reply
    return replace(reply, text=reply.text + "".join(f" word{i}" for i in range(words)))


def decide(
    messages: list[Message],
    tools: list[ToolSpec],
    behaviour: Behaviour,
    forced: str | None = None,
    schema: dict[str, Any] | None = None,
    hosted: frozenset[str] = frozenset(),
) -> Reply:
    """The scripted model's choice for a request. Pure and deterministic."""
    return _padded(_decide(messages, tools, behaviour, forced, schema, hosted), behaviour.words)


def _decide(
    messages: list[Message],
    tools: list[ToolSpec],
    behaviour: Behaviour,
    forced: str | None,
    schema: dict[str, Any] | None,
    hosted: frozenset[str],
) -> Reply:
    reasoning = None
    user_text = latest_user_text(messages)
    if behaviour.reason:
        reasoning = f"The user wrote {len(user_text.split())} words; deciding how to answer."
    if user_text.startswith(GUARD_PROMPT):
        return Reply(text="unsafe\nS1" if behaviour.unsafe else "safe")
    last = messages[-1] if messages else Message(role="user")
    if schema is not None and not behaviour.badjson and (last.role == "tool" or not forced):
        return Reply(text=json.dumps(fill_schema(schema, user_text)), reasoning=reasoning)
    if last.role == "tool":
        return Reply(text=f"The {last.tool_name} tool returned: {last.text}", reasoning=reasoning)
    if forced:
        tool = next((t for t in tools if forced in (t.name, "required")), None)
        if tool is not None:
            return Reply(
                tool_name=tool.name,
                arguments=json.dumps(_guess_arguments(user_text, tool.parameters)),
                reasoning=reasoning,
            )
    for kind in sorted(hosted):
        if _HOSTED_ASKS.get(kind, "\0") in user_text.lower():
            return replace(_hosted_call(kind, user_text), reasoning=reasoning)
    for tool in tools:
        if _mentions(user_text, tool.name):
            args = _guess_arguments(user_text, tool.parameters)
            return Reply(tool_name=tool.name, arguments=json.dumps(args), reasoning=reasoning)
    return Reply(text=f"You said: {user_text}", reasoning=reasoning)


def split_chunks(text: str, chunks: int) -> list[str]:
    """Split ``text`` into ``chunks`` contiguous, non-empty pieces (fewer if it is short)."""
    if not text:
        return [""]
    n = max(1, min(chunks, len(text)))
    size, extra = divmod(len(text), n)
    pieces, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: whitespace-separated words."""
    return len(text.split())
