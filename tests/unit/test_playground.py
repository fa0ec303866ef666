"""The playground's pure parts: its routes in the table (and which are open), its flag, the MLflow
UI it links traces to. The page itself is tested in a browser: ``tests/e2e/test_playground.py``."""

from __future__ import annotations

from importlib import resources

import pytest

from agentship.server.cli import _parser
from agentship.server.http.auth import OPEN_PATHS
from agentship.server.playground.routes import FILES, mlflow_ui, trace_url
from agentship.server.routes import PLAYGROUND_PATH, table
from agentship.server.settings import ServerSettings

PAGE_FILES = {f"{PLAYGROUND_PATH}/{name}" for name in FILES if name != "index.html"} | {PLAYGROUND_PATH}


def test_the_playground_is_in_the_table_unless_turned_off() -> None:
    on = {api.path for api in table(a2a=False)}
    off = {api.path for api in table(a2a=False, playground=False)}
    assert on - off == PAGE_FILES | {f"{PLAYGROUND_PATH}/config"}
    assert not any(path.startswith(PLAYGROUND_PATH) for path in off)


def test_the_open_paths_are_the_open_operations() -> None:
    """What the bearer-key middleware lets through is what the document says needs no key: the
    page and its files, not its settings (nor anything else of the API)."""
    assert {api.path for api in table(a2a=True) if api.operation.open} == OPEN_PATHS
    assert PAGE_FILES <= OPEN_PATHS and f"{PLAYGROUND_PATH}/config" not in OPEN_PATHS


def test_every_file_the_page_loads_is_shipped_and_served() -> None:
    folder = resources.files("agentship.server.playground")
    page = folder.joinpath("index.html").read_text()
    for name in FILES:
        assert folder.joinpath(name).is_file(), name
    assert 'href="playground/playground.css"' in page and 'src="playground/playground.js"' in page
    assert 'from "./stream.js"' in folder.joinpath("playground.js").read_text()


def test_no_playground_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _parser("serve").parse_args(["-m", "m"]).playground is True
    assert _parser("serve").parse_args(["-m", "m", "--no-playground"]).playground is False
    monkeypatch.setenv("SERVING_MODEL_URI", "m")
    assert ServerSettings.from_env().playground is True
    monkeypatch.setenv("SERVING_PLAYGROUND", "false")
    assert ServerSettings.from_env().playground is False


@pytest.mark.parametrize(
    ("explicit", "tracking", "in_store", "expected"),
    [
        (None, "http://mlflow:5000", True, "http://mlflow:5000"),
        (None, "https://bob:secret@mlflow.example.com/prefix/", True, "https://mlflow.example.com/prefix"),
        (None, "http://mlflow:5000", False, None),  # traces go over OTLP instead
        (None, "sqlite:///mlflow.db", True, None),
        (None, "databricks", True, None),
        ("http://ui.example.com/", "sqlite:///mlflow.db", True, "http://ui.example.com"),
    ],
)
def test_the_mlflow_ui_is_known_only_from_an_address(
    explicit: str | None, tracking: str, in_store: bool, expected: str | None
) -> None:
    assert mlflow_ui(explicit, tracking, in_store) == expected


def test_a_trace_link_is_the_uis_trace_page() -> None:
    assert trace_url(None, "3") is None
    assert (
        trace_url("http://ui:5000", "3")
        == "http://ui:5000/#/experiments/3/traces?selectedEvaluationId={trace_id}"
    )
