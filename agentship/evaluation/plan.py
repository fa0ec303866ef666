"""An evaluation's plan: every argument checked and every input read before anything is loaded
or logged.

:func:`plan_evaluation` reads the dataset file (or the MLflow dataset) and the conversation test
cases, builds the scorers that will run, and checks that every gate threshold names a metric
those scorers produce. A usage error found here is a :class:`~agentship.errors.ConfigError`
raised before the target is loaded and before a run is opened, so it leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflow.genai.scorers import Scorer

from agentship.errors import ConfigError
from agentship.evaluation import dataset as datasets
from agentship.evaluation import judges
from agentship.evaluation.gate import Threshold
from agentship.evaluation.scorers import code_scorers, session_scorers

if TYPE_CHECKING:
    from agentship.evaluation.runner import EvaluationOptions


@dataclass
class EvaluationPlan:
    """What one evaluation will do: its data, its scorers, and the metrics they produce."""

    records: Any = None
    """The single-turn records (a list), or the MLflow evaluation dataset; None for none."""
    record_scorers: list[Scorer] = field(default_factory=list)
    simulation: Any = None
    """MLflow's conversation simulator over the test cases; None when none are simulated."""
    conversation_scorers: list[Scorer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> set[str]:
        """Every metric the scorers can produce: ``NAME/AGGREGATION``."""
        return {
            f"{scorer.name}/{aggregation}"
            for scorer in [*self.record_scorers, *self.conversation_scorers]
            for aggregation in (scorer.aggregations or ["mean"])
            if isinstance(aggregation, str)
        }


def check_combination(options: EvaluationOptions) -> None:
    """The options that go together, and those that do not."""
    if options.dataset is None and options.dataset_name is None and options.conversations is None:
        raise ConfigError(
            "give a dataset: --dataset FILE.jsonl or --dataset-name NAME (and/or --conversations)"
        )
    if options.dataset is not None and options.dataset_name is not None:
        raise ConfigError("--dataset and --dataset-name are alternatives: give one")
    if options.promote_alias and not options.thresholds:
        raise ConfigError("--promote needs at least one --min-score or --max-score to gate on")
    if options.max_turns < 1:
        raise ConfigError(f"--max-turns must be at least 1, not {options.max_turns}")


def _records(options: EvaluationOptions) -> tuple[Any, set[str]]:
    if options.dataset is not None:
        records = datasets.load_records(options.dataset)
        return records, datasets.expectation_keys(records)
    if options.dataset_name is None:
        return None, set()
    data = datasets.load_mlflow_dataset(options.dataset_name)
    frame = data.to_df()
    rows = frame["expectations"].tolist() if "expectations" in frame else []
    return data, {key for row in rows if isinstance(row, Mapping) for key in row}


def check_thresholds(thresholds: Sequence[Threshold], metrics: set[str]) -> None:
    """Each threshold names a metric the evaluation's scorers produce."""
    for threshold in thresholds:
        if threshold.metric not in metrics:
            raise ConfigError(
                f"--{threshold.kind}-score {threshold.metric}: no scorer of this evaluation produces it; "
                f"it produces {', '.join(sorted(metrics)) or 'no metrics'}"
            )


def plan_evaluation(options: EvaluationOptions) -> EvaluationPlan:
    """The plan of ``options``: files read and parsed, scorers chosen, thresholds checked."""
    check_combination(options)
    plan = EvaluationPlan()
    plan.records, keys = _records(options)
    if plan.records is not None:
        plan.record_scorers = code_scorers()
        if options.judge_model:
            plan.record_scorers += judges.judge_scorers(options.judge_model, keys)
    if options.conversations is not None:
        cases = datasets.load_test_cases(options.conversations)
        if options.simulator_model:
            plan.simulation = judges.simulator(cases, options.simulator_model, options.max_turns)
            plan.conversation_scorers = session_scorers()
            if options.judge_model:
                plan.conversation_scorers += judges.conversation_judges(options.judge_model)
        else:
            plan.notes.append(
                f"conversations skipped: no user simulator ({judges.SIMULATOR_MODEL_ENV} or --simulator-model)"
            )
    check_thresholds(options.thresholds, plan.metrics())
    return plan
