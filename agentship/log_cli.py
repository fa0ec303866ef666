"""``agentship log``: log an agent as an MLflow model from code and register it.

    agentship log --agent openai-agents \\
        [--config FILE] [--registered-model-name NAME] [--alias ALIAS] [--code-path DIR ...]

(``python logging_scripts/log_agent.py`` in a checkout is the same command.) The last line of
stdout is the model URI, ``models:/NAME/VERSION``. It honours ``MLFLOW_TRACKING_URI`` and
``MLFLOW_EXPERIMENT_NAME`` (default experiment: ``agentship``); without a tracking URI it uses a
local SQLite store, ``./mlflow.db``. Under ``mlflow run`` it logs into the project's run. The
model backend does not need to be reachable.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from agentship.errors import AgentError
from agentship.model_logging import (
    AGENT_CODE,
    DEFAULT_CONFIGS,
    DEFAULT_NAMES,
    apply_overrides,
    load_config,
    log_agent,
)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Log an agent to MLflow and register it.")
    parser.add_argument("--agent", required=True, choices=sorted(AGENT_CODE))
    parser.add_argument(
        "--config", help="model config (YAML/JSON); default: the example config (agentship configs)"
    )
    parser.add_argument("--registered-model-name", help="registry name (default per agent)")
    parser.add_argument("--no-register", action="store_true", help="log without registering")
    parser.add_argument("--alias", help="registry alias to point at the new version, e.g. champion")
    parser.add_argument(
        "--code-path", action="append", default=[], help="extra module dir for tools (repeatable)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a top-level config field, value parsed as YAML (repeatable), e.g. --set model=gpt-4.1",
    )
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    for option in ("config", "registered_model_name", "alias"):  # "" (e.g. from MLproject) = not given
        if getattr(args, option) == "":
            setattr(args, option, None)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import mlflow

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    if not any(
        os.environ.get(v) for v in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")
    ):
        mlflow.set_experiment("agentship")

    name = None if args.no_register else (args.registered_model_name or DEFAULT_NAMES[args.agent])
    try:
        config = apply_overrides(load_config(args.config or DEFAULT_CONFIGS[args.agent]), args.overrides)
        logged = log_agent(
            args.agent,
            config,
            registered_model_name=name,
            alias=args.alias,
            extra_code_paths=args.code_path,
        )
    except AgentError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(f"run_id: {logged.run_id}", file=sys.stderr)
    print(logged.model_uri)
    return 0
