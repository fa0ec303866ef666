"""Evaluation datasets: JSONL files in MLflow's record format, or MLflow evaluation datasets.

A single-turn record is what :func:`mlflow.genai.evaluate` takes, one JSON object a line::

    {"inputs": {"input": [{"role": "user", "content": "What is the weather in Paris?"}]},
     "expectations": {"expected_tool_calls": [{"name": "get_weather"}],
                      "expected_facts": ["18°C", "sunny"]}}

``inputs`` are the ResponsesAgent request's fields (``input``, and optionally ``context`` and
``custom_inputs``); ``input`` may also be a plain string, the user's message. The expectation
keys are MLflow's own (``expected_facts`` and ``expected_response`` for its Correctness judge,
``expected_tool_calls`` for its tool-call scorers, ``guidelines``).

A conversation test case, for MLflow's :class:`~mlflow.genai.simulators.ConversationSimulator`,
is one JSON object a line with a ``goal`` (and optionally ``persona``, ``context``,
``expectations``, ``simulation_guidelines``).

Parsing is pure (:func:`parse_records`, :func:`parse_test_cases`); only the loaders read files
or the tracking store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentship.errors import ConfigError

type Record = dict[str, Any]

_INPUT_FIELDS = {"input", "context", "custom_inputs"}
_LIST_EXPECTATIONS = ("expected_facts", "expected_tool_calls")
_TEST_CASE_FIELDS = {"goal", "persona", "context", "expectations", "simulation_guidelines"}


def _json_lines(lines: Iterable[str], source: str) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}:{number}: not valid JSON: {exc.msg}") from exc
        if not isinstance(value, dict):
            raise ConfigError(f"{source}:{number}: each line must be a JSON object")
        out.append((number, value))
    if not out:
        raise ConfigError(f"{source} holds no records")
    return out


def normalize_inputs(inputs: dict[str, Any], where: str) -> dict[str, Any]:
    """The record's ``inputs`` as request fields, with a string ``input`` made a user message."""
    unknown = set(inputs) - _INPUT_FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown inputs field(s) {sorted(unknown)}; use {sorted(_INPUT_FIELDS)}")
    value = inputs.get("input")
    if isinstance(value, str) and value.strip():
        return {**inputs, "input": [{"role": "user", "content": value}]}
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: inputs.input must be a non-empty string or list of input items")
    return dict(inputs)


def _check_expectations(expectations: Any, where: str) -> dict[str, Any]:
    if not isinstance(expectations, dict):
        raise ConfigError(f"{where}: expectations must be an object")
    for key in _LIST_EXPECTATIONS:
        if key in expectations and not isinstance(expectations[key], list):
            raise ConfigError(f"{where}: expectations.{key} must be a list")
    for call in expectations.get("expected_tool_calls", []):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ConfigError(f"{where}: each expected tool call must be an object with a 'name'")
    return expectations


def parse_records(lines: Iterable[str], source: str = "dataset") -> list[Record]:
    """Single-turn evaluation records from JSONL lines."""
    records = []
    for number, raw in _json_lines(lines, source):
        where = f"{source}:{number}"
        inputs = raw.get("inputs")
        if not isinstance(inputs, dict):
            raise ConfigError(
                f"{where}: a record needs an 'inputs' object (conversations go in --conversations)"
            )
        record: Record = {"inputs": normalize_inputs(inputs, where)}
        if "expectations" in raw:
            record["expectations"] = _check_expectations(raw["expectations"], where)
        if "tags" in raw:
            record["tags"] = raw["tags"]
        records.append(record)
    return records


def parse_test_cases(lines: Iterable[str], source: str = "conversations") -> list[Record]:
    """Conversation test cases (``goal``, ``persona``, …) from JSONL lines."""
    cases = []
    for number, raw in _json_lines(lines, source):
        where = f"{source}:{number}"
        if not isinstance(raw.get("goal"), str) or not raw["goal"].strip():
            raise ConfigError(f"{where}: a conversation test case needs a 'goal'")
        unknown = set(raw) - _TEST_CASE_FIELDS
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; use {sorted(_TEST_CASE_FIELDS)}")
        if "expectations" in raw:
            _check_expectations(raw["expectations"], where)
        cases.append(dict(raw))
    return cases


def _read_lines(path: str | Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read dataset file {path}: {exc.strerror}") from exc


def load_records(path: str | Path) -> list[Record]:
    return parse_records(_read_lines(path), str(path))


def load_test_cases(path: str | Path) -> list[Record]:
    return parse_test_cases(_read_lines(path), str(path))


def load_mlflow_dataset(name: str) -> Any:
    """The MLflow evaluation dataset called ``name`` (``mlflow.genai.datasets``)."""
    from mlflow.exceptions import MlflowException
    from mlflow.genai.datasets import get_dataset

    try:
        return get_dataset(name=name)
    except MlflowException as exc:
        raise ConfigError(f"no MLflow evaluation dataset {name!r}: {exc.message}") from exc


def expectation_keys(records: Iterable[Record]) -> set[str]:
    """Every expectation key any record has (decides which judges apply)."""
    return {key for record in records for key in (record.get("expectations") or {})}
