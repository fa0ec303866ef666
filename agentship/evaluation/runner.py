"""One evaluation: a run in MLflow, linked to the model version, scored, and gated.

The run holds what ``mlflow.genai.evaluate`` logs (metrics, the dataset, a trace per record and
their assessments), called once for the single-turn records and once more for the simulated
conversations, if any, into the same run. The run is linked to the registered version: its
logged model (``model_id``), and tags naming the version; the version is tagged with the run
once the evaluation has finished. Usage errors are found before anything is loaded or logged
(:mod:`.plan`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from agentship.errors import AgentError, ConfigError, EvaluationFailedError
from agentship.evaluation.gate import GateResult, Threshold, check, promote
from agentship.evaluation.plan import EvaluationPlan, plan_evaluation
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
    """What needs the target resolved: only a registered version can be promoted."""
    if options.promote_alias and version is None:
        raise ConfigError(
            "--promote needs a registered model target, models:/NAME@ALIAS or models:/NAME/VERSION"
        )


def _evaluate_records(plan: EvaluationPlan, target: Target, model_id: str | None) -> dict[str, float]:
    if plan.records is None:
        return {}
    result = mlflow.genai.evaluate(
        data=plan.records, predict_fn=target.predict, scorers=plan.record_scorers, model_id=model_id
    )
    return dict(result.metrics)


def _evaluate_conversations(plan: EvaluationPlan, target: Target, model_id: str | None) -> dict[str, float]:
    if plan.simulation is None:
        return {}
    result = mlflow.genai.evaluate(
        data=plan.simulation, predict_fn=target.predict, scorers=plan.conversation_scorers, model_id=model_id
    )
    return dict(result.metrics)


def _link(options: EvaluationOptions, version: ModelVersionRef | None) -> None:
    """The run's tags: what it evaluates (the version learns of the run only once it finished)."""
    tags = {"agentship.eval.target": options.target}
    if options.judge_model:
        tags["agentship.eval.judge_model"] = options.judge_model
    if version is not None:
        tags |= {
            "agentship.eval.model_name": version.name,
            "agentship.eval.model_version": version.version,
            "agentship.eval.model_uri": version.uri,
        }
    mlflow.set_tags(tags)


def _gate(outcome: EvaluationOutcome, options: EvaluationOptions) -> None:
    if not options.thresholds:
        return
    outcome.gate = check(outcome.metrics, options.thresholds)
    mlflow.set_tag("agentship.eval.gate", "passed" if outcome.gate.passed else "failed")


def _record_on_version(outcome: EvaluationOutcome, options: EvaluationOptions) -> None:
    """Tag the version with this finished evaluation (and its gate), and promote it if it passed."""
    version = outcome.model_version
    if version is None:
        return
    client = MlflowClient()
    client.set_model_version_tag(version.name, version.version, "agentship.eval.run_id", outcome.run_id)
    if outcome.gate is None:
        return
    verdict = "passed" if outcome.gate.passed else "failed"
    client.set_model_version_tag(version.name, version.version, "agentship.eval.gate", verdict)
    if options.promote_alias and outcome.gate.passed:
        promote(version.name, version.version, options.promote_alias)
        mlflow.set_tag("agentship.eval.promoted", f"{options.promote_alias} -> {version.version}")
        outcome.promoted = True


def run_evaluation(options: EvaluationOptions, experiment: str | None = None) -> EvaluationOutcome:
    """Evaluate, in a new run of ``experiment`` (made if missing; default: the active one);
    gate and promote when asked.

    Every argument is checked and every input read first (:func:`plan_evaluation`); only then
    is the target loaded and the run opened. The version is tagged with the run only once the
    evaluation has finished: a failed one leaves the version as it was."""
    plan = plan_evaluation(options)
    version = resolve_model_version(options.target)
    check_options(options, version)
    target = open_target(version.uri if version is not None else options.target)
    if experiment is not None:
        mlflow.set_experiment(experiment)
    model_id = version.model_id if version is not None else None
    name = options.run_name or (
        f"evaluate {version.name} v{version.version}" if version else f"evaluate {options.target}"
    )
    try:
        with mlflow.start_run(run_name=name) as run:
            _link(options, version)
            outcome = EvaluationOutcome(run.info.run_id, {}, version, notes=list(plan.notes))
            try:
                outcome.metrics |= _evaluate_records(plan, target, model_id)
                outcome.metrics |= _evaluate_conversations(plan, target, model_id)
            except MlflowException as exc:
                if isinstance(exc, AgentError):
                    raise
                raise EvaluationFailedError(
                    f"the evaluation failed: {exc.message} (run {run.info.run_id} is marked FAILED; "
                    "the version was not tagged)"
                ) from exc
            _gate(outcome, options)
            _record_on_version(outcome, options)
    finally:
        target.close()
    return outcome
