"""Our wire objects, validated strictly with openai-python's own types: the release the
constraints pin (in this process) and the newest release on the index (installed by
``scripts/openai_newest.sh``, in a validator process of its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pydantic
from openai.types.responses import Response, ResponseStreamEvent

REPO = Path(__file__).resolve().parents[2]
NEWEST_ENV = "AGENTSHIP_OPENAI_NEWEST"
_PINNED: dict[str, pydantic.TypeAdapter[Any]] = {
    "response": pydantic.TypeAdapter(Response),
    "event": pydantic.TypeAdapter(ResponseStreamEvent),
}


class Newest:
    """A validator process over the newest openai-python."""

    def __init__(self) -> None:
        directory = (
            os.environ.get(NEWEST_ENV)
            or subprocess.run(
                ["bash", str(REPO / "scripts" / "openai_newest.sh")],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        env = {**os.environ, "PYTHONPATH": directory}
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("openai_check.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        self.version = self.process.stdout.readline().split()[1]

    def check(self, kind: str, value: Any) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"kind": kind, "value": value}) + "\n")
        self.process.stdin.flush()
        return str(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)


_newest: Newest | None = None


def newest() -> Newest:
    global _newest
    if _newest is None:
        _newest = Newest()
    return _newest


def _valid(kind: str, value: Any) -> None:
    try:
        _PINNED[kind].validate_python(value, strict=True)
    except pydantic.ValidationError as exc:
        raise AssertionError(f"not a valid {kind} for openai {openai.__version__}: {exc}\n{value}") from exc
    verdict = newest().check(kind, value)
    assert verdict == "ok", f"not a valid {kind} for openai {newest().version}: {verdict}\n{value}"


def valid_response(body: dict[str, Any]) -> dict[str, Any]:
    """``body``, once it validates as a Response object for both releases."""
    _valid("response", body)
    return body


def valid_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``events``, once each validates as a Responses stream event for both releases."""
    for event in events:
        _valid("event", event)
    return events
