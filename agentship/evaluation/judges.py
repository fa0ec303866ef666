"""MLflow's LLM judges and its conversation simulator, when a model for them is configured.

Both are named as MLflow names judge models, ``<provider>:/<model>``: for an OpenAI-compatible
endpoint, ``openai:/MODEL``, which MLflow calls at ``OPENAI_API_BASE`` (else
``OPENAI_BASE_URL``) with ``OPENAI_API_KEY``. The openai SDK, and so an agent evaluated in this
process, reads only ``OPENAI_BASE_URL``: with ``OPENAI_API_BASE`` set, the judge and the agent
can use different endpoints.

* ``AGENTSHIP_JUDGE_MODEL`` (or ``--judge-model``): MLflow's RelevanceToQuery, and Correctness
  where records carry ``expected_facts``/``expected_response`` (and ExpectationsGuidelines for
  ``guidelines``); for conversations, ConversationCompleteness and UserFrustration.
* ``AGENTSHIP_SIMULATOR_MODEL`` (or ``--simulator-model``): the simulated user of MLflow's
  :class:`~mlflow.genai.simulators.ConversationSimulator`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlflow.genai.scorers import (
    ConversationCompleteness,
    Correctness,
    ExpectationsGuidelines,
    RelevanceToQuery,
    Scorer,
    UserFrustration,
)
from mlflow.genai.simulators import ConversationSimulator

from agentship.errors import ConfigError

JUDGE_MODEL_ENV = "AGENTSHIP_JUDGE_MODEL"
SIMULATOR_MODEL_ENV = "AGENTSHIP_SIMULATOR_MODEL"


def model_from(explicit: str | None, environ: Mapping[str, str], variable: str) -> str | None:
    """The configured model URI (the flag wins over the environment); checked for its form."""
    model = explicit or environ.get(variable) or None
    if model is not None and ":/" not in model:
        raise ConfigError(
            f"{variable} / the flag must be an MLflow model URI like openai:/gpt-4.1-mini, not {model!r}"
        )
    return model


def judge_scorers(model: str, expectation_keys: set[str]) -> list[Scorer]:
    """MLflow's built-in judges that apply to records with these expectation keys."""
    scorers: list[Scorer] = [RelevanceToQuery(model=model)]
    if expectation_keys & {"expected_facts", "expected_response"}:
        scorers.append(Correctness(model=model))
    if "guidelines" in expectation_keys:
        scorers.append(ExpectationsGuidelines(model=model))
    return scorers


def conversation_judges(model: str) -> list[Scorer]:
    """MLflow's session-level judges for simulated conversations."""
    return [ConversationCompleteness(model=model), UserFrustration(model=model)]


def simulator(test_cases: Sequence[dict[str, Any]], model: str, max_turns: int) -> ConversationSimulator:
    """MLflow's conversation simulator over the test cases, its user played by ``model``."""
    if max_turns < 1:
        raise ConfigError(f"--max-turns must be at least 1, not {max_turns}")
    return ConversationSimulator(test_cases=list(test_cases), max_turns=max_turns, user_model=model)
