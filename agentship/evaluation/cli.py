"""``evaluate``: evaluate a registered or served agent with ``mlflow.genai.evaluate``.

    python logging_scripts/evaluate_agent.py models:/openai-agents-assistant@champion \\
        --dataset datasets/example_agent.jsonl [--conversations datasets/example_conversations.jsonl] \\
        [--judge-model openai:/gpt-4.1-mini] [--simulator-model openai:/gpt-4.1-mini] \\
        [--promote production --min-score expected_tool_called=1 --max-score latency_ms/p90=5000]

Exit codes: 0 evaluated (and, with thresholds, the gate passed); 1 the gate failed (no alias
moved); 2 a usage or configuration error, found before anything is loaded or logged; 3 the
evaluation failed midway (its run is marked FAILED, the version is not tagged). The last line of
stdout is the run id.
:func:`main` takes ``argv``, so that a console command can wire it in.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agentship.errors import AgentError, EvaluationFailedError
from agentship.evaluation import judges
from agentship.evaluation.gate import parse_threshold
from agentship.evaluation.runner import EvaluationOptions, EvaluationOutcome, run_evaluation

DEFAULT_EXPERIMENT = "agentship"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate_agent.py",
        description="Evaluate an agent with mlflow.genai.evaluate and gate a registry alias on the scores.",
    )
    parser.add_argument("target", help="models:/NAME@ALIAS, models:/NAME/VERSION, or a served URL (http://…)")
    parser.add_argument("--dataset", type=Path, help="single-turn records, JSONL in MLflow's record format")
    parser.add_argument("--dataset-name", help="an MLflow evaluation dataset (mlflow.genai.datasets) instead")
    parser.add_argument("--conversations", type=Path, help="conversation test cases (JSONL with 'goal')")
    parser.add_argument(
        "--judge-model", help=f"LLM judge, e.g. openai:/gpt-4.1-mini (env {judges.JUDGE_MODEL_ENV})"
    )
    parser.add_argument(
        "--simulator-model", help=f"simulated user's model (env {judges.SIMULATOR_MODEL_ENV})"
    )
    parser.add_argument("--max-turns", type=int, default=3, help="turns per simulated conversation (3)")
    parser.add_argument("--run-name", help="the evaluation run's name")
    parser.add_argument(
        "--promote", metavar="ALIAS", help="move ALIAS to the evaluated version if the gate passes"
    )
    parser.add_argument("--min-score", action="append", default=[], metavar="METRIC=VALUE",
                        help="gate: metric (its mean unless METRIC has /agg) at least VALUE (repeatable)")  # fmt: skip
    parser.add_argument("--max-score", action="append", default=[], metavar="METRIC=VALUE",
                        help="gate: metric at most VALUE, e.g. latency_ms/p90=5000 (repeatable)")  # fmt: skip
    return parser


def _blank_to_none(args: argparse.Namespace) -> None:
    """MLproject passes every parameter; an empty string means "not given"."""
    for name in (
        "dataset",
        "dataset_name",
        "conversations",
        "judge_model",
        "simulator_model",
        "run_name",
        "promote",
    ):
        value = getattr(args, name)
        if value is not None and str(value) in ("", "."):
            setattr(args, name, None)


def options_from(args: argparse.Namespace, environ: os._Environ[str] | dict[str, str]) -> EvaluationOptions:
    thresholds = [parse_threshold(t, "min") for t in args.min_score if t]
    thresholds += [parse_threshold(t, "max") for t in args.max_score if t]
    return EvaluationOptions(
        target=args.target,
        dataset=args.dataset,
        dataset_name=args.dataset_name,
        conversations=args.conversations,
        judge_model=judges.model_from(args.judge_model, environ, judges.JUDGE_MODEL_ENV),
        simulator_model=judges.model_from(args.simulator_model, environ, judges.SIMULATOR_MODEL_ENV),
        max_turns=args.max_turns,
        run_name=args.run_name,
        thresholds=tuple(thresholds),
        promote_alias=args.promote,
    )


def _tracking_defaults() -> str | None:
    """Point MLflow at ``./mlflow.db`` unless ``MLFLOW_TRACKING_URI`` says otherwise; the
    experiment to open the run in when the environment names none (created only once the
    arguments have been checked)."""
    import mlflow

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    if any(os.environ.get(v) for v in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")):
        return None
    return DEFAULT_EXPERIMENT


def report(outcome: EvaluationOutcome) -> list[str]:
    """The outcome as lines for a person. Pure."""
    lines = [f"{name:<44} {value:.4g}" for name, value in sorted(outcome.metrics.items())]
    lines += [f"note: {note}" for note in outcome.notes]
    if outcome.gate is not None:
        lines += [check.describe() for check in outcome.gate.checks]
        lines.append(f"gate: {'passed' if outcome.gate.passed else 'failed'}")
    if outcome.promoted and outcome.model_version is not None:
        lines.append(f"promoted: {outcome.model_version.uri}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _blank_to_none(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        options = options_from(args, os.environ)
        outcome = run_evaluation(options, experiment=_tracking_defaults())
    except EvaluationFailedError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 3
    except AgentError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    for line in report(outcome):
        print(line, file=sys.stderr)
    print(outcome.run_id)
    return 1 if outcome.gate is not None and not outcome.gate.passed else 0
