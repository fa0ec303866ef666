"""The ``agentship`` command (a console script of the installed package).

    agentship log --agent openai-agents [--config FILE] [--alias champion] ...   log and register
    agentship serve -m models:/NAME@ALIAS [-p 8000] ...                         serve it
    agentship client served http://127.0.0.1:8000 "question" [--stream] ...    ask a served agent
    agentship evaluate models:/NAME@ALIAS --dataset FILE ...                    evaluate, gate
    agentship configs [--copy DIR]                                              the example configs
    agentship llama-stack ingest DIR [--name NAME] ...                          a vector store from files
    agentship --version

Each subcommand takes the flags of the command it stands for (``agentship log --help``).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import agentship

_USAGE = (
    "usage: agentship {log,serve,client,evaluate,configs,llama-stack} ...\n"
    "       agentship --version\n\n"
    "  log       log an agent as an MLflow model and register it\n"
    "  serve     serve a logged or registered agent (python -m agentship.server)\n"
    "  client    ask a served agent (served URL), a logged one (local MODEL_URI) or an A2A agent\n"
    "  evaluate  evaluate an agent with mlflow.genai.evaluate and gate an alias on the scores\n"
    "  configs   list the example model configs, or copy them: agentship configs --copy DIR\n"
    "  llama-stack ingest DIR\n"
    "            make a vector store on a Llama Stack / OGX server from a folder of files, print its id\n"
)


def _log(argv: list[str]) -> int:
    from agentship.log_cli import main

    return main(argv, prog="agentship log")


def _serve(argv: list[str]) -> int:
    from agentship.server.cli import main

    return main(argv, prog="agentship serve")


def _client(argv: list[str]) -> int:
    from agentship.client.cli import main

    return main(argv, prog="agentship client")


def _evaluate(argv: list[str]) -> int:
    from agentship.evaluation.cli import main

    return main(argv)


def _configs(argv: list[str]) -> int:
    """List the example configs (name and path), or copy them into a directory."""
    from agentship.model_logging import example_configs

    configs = example_configs()
    if argv[:1] == ["--copy"] and len(argv) == 2:
        target = Path(argv[1])
        target.mkdir(parents=True, exist_ok=True)
        for path in configs.values():
            shutil.copyfile(path, target / path.name)
            print(target / path.name)
        return 0
    if argv:
        print("usage: agentship configs [--copy DIR]", file=sys.stderr)
        return 2
    for name, path in configs.items():
        print(f"{name:<28} {path}")
    return 0


def _llama_stack(argv: list[str]) -> int:
    from agentship.llama_stack.ingest_cli import main

    return main(argv, prog="agentship llama-stack")


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "log": _log,
    "serve": _serve,
    "client": _client,
    "evaluate": _evaluate,
    "configs": _configs,
    "llama-stack": _llama_stack,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--version"]:
        print(f"agentship {agentship.__version__}")
        return 0
    if not args or args[0] not in COMMANDS:
        print(_USAGE, file=sys.stderr if args[:1] not in (["-h"], ["--help"]) else sys.stdout)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    return COMMANDS[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())
