"""The promotion gate: an alias moves to the evaluated version only if every threshold holds.

Thresholds name a metric of the evaluation run, ``NAME=VALUE``: ``NAME`` alone means its mean
(``expected_facts`` is ``expected_facts/mean``); ``latency_ms/p90`` names another aggregate.
``--min-score`` wants the metric at or above the value, ``--max-score`` at or below (latency,
tokens). A metric the run did not produce fails its threshold: no data is not a pass.
The checks are pure; :func:`promote` is the one registry write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from mlflow.tracking import MlflowClient

from agentship.errors import ConfigError


@dataclass(frozen=True)
class Threshold:
    metric: str
    bound: float
    kind: Literal["min", "max"]

    def describe(self) -> str:
        return f"{self.metric} {'>=' if self.kind == 'min' else '<='} {self.bound:g}"


@dataclass(frozen=True)
class Check:
    threshold: Threshold
    value: float | None

    @property
    def passed(self) -> bool:
        if self.value is None:
            return False
        if self.threshold.kind == "min":
            return self.value >= self.threshold.bound
        return self.value <= self.threshold.bound

    def describe(self) -> str:
        got = "missing" if self.value is None else f"{self.value:g}"
        return f"{'pass' if self.passed else 'FAIL'}  {self.threshold.describe()}  (got {got})"


@dataclass(frozen=True)
class GateResult:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)


def parse_threshold(text: str, kind: Literal["min", "max"]) -> Threshold:
    """``NAME=VALUE`` as a threshold; ``NAME`` without an aggregate means its mean."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(f"--{kind}-score {text!r} is not NAME=VALUE, e.g. expected_facts=0.8")
    try:
        bound = float(value)
    except ValueError as exc:
        raise ConfigError(f"--{kind}-score {text!r}: {value!r} is not a number") from exc
    return Threshold(name if "/" in name else f"{name}/mean", bound, kind)


def check(metrics: Mapping[str, float], thresholds: Sequence[Threshold]) -> GateResult:
    return GateResult(tuple(Check(t, _number(metrics.get(t.metric))) for t in thresholds))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if value != value else float(value)  # NaN is no value


def promote(name: str, version: str, alias: str, client: MlflowClient | None = None) -> None:
    """Point ``alias`` of the registered model ``name`` at ``version``."""
    (client or MlflowClient()).set_registered_model_alias(name, alias, version)
