"""One evaluation: a run in MLflow, linked to the model version, scored, and gated.

The run holds what ``mlflow.genai.evaluate`` logs (metrics, the dataset, a trace per record and
their assessments), called once for the single-turn records and once more for the simulated
conversations, if any, into the same run. The run is linked to the registered version: its
logged model (``model_id``), and tags naming the version; the version is tagged with the run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.genai.scorers import Scorer
from mlflow.tracking import MlflowClient

from agentship.errors import ConfigError
from agentship.evaluation import dataset as datasets
from agentship.evaluation import judges
from agentship.evaluation.gate import GateResult, Threshold, check, promote
from agentship.evaluation.scorers import code_scorers, session_scorers
from agentship.evaluation.targets import Target, open_target

_logger = logging.getLogger(__name__)

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))$")


@dataclass(frozen=True)
class ModelVersionRef:
    name: str
    version: str
    model_id: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class EvaluationOptions:
    target: str
    """``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, another model URI, or a served URL."""
    dataset: Path | None = None
    dataset_name: str | None = None
    conversations: Path | None = None
    judge_model: str | None = None
    simulator_model: str | None = None
    max_turns: int = 3
    run_name: str | None = None
    thresholds: tuple[Threshold, ...] = ()
    promote_alias: str | None = None


@dataclass
class EvaluationOutcome:
    run_id: str
    metrics: dict[str, float]
    model_version: ModelVersionRef | None
    gate: GateResult | None = None
    promoted: bool = False
    notes: list[str] = field(default_factory=list)


def resolve_model_version(uri: str, client: MlflowClient | None = None) -> ModelVersionRef | None:
    """The registered version a ``models:/`` URI names (an alias resolved now); None otherwise."""
    match = _MODEL_URI.match(uri)
    if match is None:
        return None
    client = client or MlflowClient()
    try:
        if match["alias"]:
            mv = client.get_model_version_by_alias(match["name"], match["alias"])
        else:
            mv = client.get_model_version(match["name"], match["version"])
    except MlflowException as exc:
        raise ConfigError(f"no registered model version for {uri}: {exc.message}") from exc
    return ModelVersionRef(mv.name, str(mv.version), mv.model_id or _logged_model_id(mv.source))


def _logged_model_id(source: str | None) -> str | None:
    """The logged model a version was registered from (MLflow 3 sources are ``models:/m-…``)."""
    match = re.match(r"^models:/(m-[0-9a-f]+)$", source or "")
    return match.group(1) if match else None


def check_options(options: EvaluationOptions, version: ModelVersionRef | None) -> None:
    if options.dataset is None and options.dataset_name is None and options.conversations is None:
        raise ConfigError(
            "give a dataset: --dataset FILE.jsonl or --dataset-name NAME (and/or --conversations)"
        )
    if options.dataset is not None and options.dataset_name is not None:
        raise ConfigError("--dataset and --dataset-name are alternatives: give one")
    if options.promote_alias:
        if version is None:
            raise ConfigError(
                "--promote needs a registered model target, models:/NAME@ALIAS or models:/NAME/VERSION"
            )
        if not options.thresholds:
            raise ConfigError("--promote needs at least one --min-score or --max-score to gate on")


def _single_turn_data(options: EvaluationOptions) -> tuple[Any, set[str]]:
    if options.dataset is not None:
        records = datasets.load_records(options.dataset)
        return records, datasets.expectation_keys(records)
    assert options.dataset_name is not None
    data = datasets.load_mlflow_dataset(options.dataset_name)
    frame = data.to_df()
    rows = frame["expectations"].tolist() if "expectations" in frame else []
    return data, {key for row in rows if isinstance(row, Mapping) for key in row}


def _evaluate_records(options: EvaluationOptions, target: Target, model_id: str | None) -> dict[str, float]:
    data, keys = _single_turn_data(options)
    scorers: list[Scorer] = code_scorers()
    if options.judge_model:
        scorers += judges.judge_scorers(options.judge_model, keys)
    result = mlflow.genai.evaluate(data=data, predict_fn=target.predict, scorers=scorers, model_id=model_id)
    return dict(result.metrics)


def _evaluate_conversations(
    options: EvaluationOptions, target: Target, model_id: str | None, notes: list[str]
) -> dict[str, float]:
    if options.conversations is None:
        return {}
    if not options.simulator_model:
        notes.append(
            f"conversations skipped: no user simulator ({judges.SIMULATOR_MODEL_ENV} or --simulator-model)"
        )
        return {}
    cases = datasets.load_test_cases(options.conversations)
    scorers: list[Scorer] = session_scorers()
    if options.judge_model:
        scorers += judges.conversation_judges(options.judge_model)
    simulation = judges.simulator(cases, options.simulator_model, options.max_turns)
    result = mlflow.genai.evaluate(
        data=simulation, predict_fn=target.predict, scorers=scorers, model_id=model_id
    )
    return dict(result.metrics)


def _link(run_id: str, options: EvaluationOptions, version: ModelVersionRef | None) -> None:
    tags = {"agentship.eval.target": options.target}
    if options.judge_model:
        tags["agentship.eval.judge_model"] = options.judge_model
    if version is not None:
        tags |= {
            "agentship.eval.model_name": version.name,
            "agentship.eval.model_version": version.version,
            "agentship.eval.model_uri": version.uri,
        }
        MlflowClient().set_model_version_tag(version.name, version.version, "agentship.eval.run_id", run_id)
    mlflow.set_tags(tags)


def _gate(outcome: EvaluationOutcome, options: EvaluationOptions) -> None:
    if not options.thresholds:
        return
    outcome.gate = check(outcome.metrics, options.thresholds)
    verdict = "passed" if outcome.gate.passed else "failed"
    mlflow.set_tag("agentship.eval.gate", verdict)
    version = outcome.model_version
    if version is not None:
        MlflowClient().set_model_version_tag(version.name, version.version, "agentship.eval.gate", verdict)
    if options.promote_alias and version is not None and outcome.gate.passed:
        promote(version.name, version.version, options.promote_alias)
        mlflow.set_tag("agentship.eval.promoted", f"{options.promote_alias} -> {version.version}")
        outcome.promoted = True


def run_evaluation(options: EvaluationOptions) -> EvaluationOutcome:
    """Evaluate, in a new run of the active experiment; gate and promote when asked."""
    version = resolve_model_version(options.target)
    check_options(options, version)
    target = open_target(version.uri if version is not None else options.target)
    model_id = version.model_id if version is not None else None
    name = options.run_name or (
        f"evaluate {version.name} v{version.version}" if version else f"evaluate {options.target}"
    )
    try:
        with mlflow.start_run(run_name=name) as run:
            _link(run.info.run_id, options, version)
            outcome = EvaluationOutcome(run.info.run_id, {}, version)
            if options.dataset is not None or options.dataset_name is not None:
                outcome.metrics |= _evaluate_records(options, target, model_id)
            outcome.metrics |= _evaluate_conversations(options, target, model_id, outcome.notes)
            _gate(outcome, options)
    finally:
        target.close()
    return outcome
