"""Validates wire objects against an openai-python release, strictly: one JSON line in, one line
out (``ok``, or the validation error). Run with that release first on ``PYTHONPATH``."""

from __future__ import annotations

import json
import sys

import openai
import pydantic
from openai.types.responses import Response, ResponseStreamEvent

ADAPTERS: dict[str, pydantic.TypeAdapter] = {
    "response": pydantic.TypeAdapter(Response),
    "event": pydantic.TypeAdapter(ResponseStreamEvent),
}


def main() -> None:
    print(f"openai {openai.__version__} {openai.__file__}", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            ADAPTERS[request["kind"]].validate_python(request["value"], strict=True)
        except pydantic.ValidationError as exc:
            print(json.dumps(str(exc)), flush=True)
        else:
            print(json.dumps("ok"), flush=True)


if __name__ == "__main__":
    main()
