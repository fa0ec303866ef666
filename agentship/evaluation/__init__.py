"""Evaluate a registered or served agent the MLflow way (``mlflow.genai.evaluate``).

:func:`run_evaluation` runs one evaluation; :func:`main` is its command line
(``logging_scripts/evaluate_agent.py``, ``mlflow run . -e evaluate``).
"""

from agentship.evaluation.cli import main
from agentship.evaluation.gate import GateResult, Threshold, parse_threshold
from agentship.evaluation.runner import EvaluationOptions, EvaluationOutcome, run_evaluation

__all__ = [
    "EvaluationOptions",
    "EvaluationOutcome",
    "GateResult",
    "Threshold",
    "main",
    "parse_threshold",
    "run_evaluation",
]
