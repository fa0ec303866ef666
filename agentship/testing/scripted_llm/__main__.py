"""Run the scripted model server: ``python -m agentship.testing.scripted_llm --port 8081``."""

from __future__ import annotations

import argparse

import uvicorn

from agentship.testing.scripted_llm.app import ScriptedLLM, create_app
from agentship.testing.scripted_llm.rules import Behaviour


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds before the first token")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds spread over chunks")
    parser.add_argument("--chunks", type=int, default=4, help="pieces a streamed text is cut in")
    parser.add_argument("--fail", type=int, default=None, help="answer every request with this status")
    parser.add_argument("--reason", action="store_true", help="stream a reasoning summary before each answer")
    parser.add_argument("--nousage", action="store_true", help="report no token usage (as llama.cpp streams)")
    args = parser.parse_args(argv)
    defaults = Behaviour(
        ttft=args.ttft,
        latency=args.latency,
        chunks=args.chunks,
        fail=args.fail,
        reason=args.reason,
        nousage=args.nousage,
    )
    app = create_app(ScriptedLLM(defaults))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
