"""The server's warning about a model's requirements: MLflow's verdicts, without MLflow's cost.

The server loads the model with ``suppress_warnings=True`` and checks ``requirements.txt``
itself (:mod:`agentship.server.core.requirements`). Its verdict on each line is MLflow's own,
word for word, and a real registered model with an unmet requirement is served with the
warning naming it, once.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path

import mlflow
import openai
import pytest
from mlflow.utils.requirements_utils import _check_requirement_satisfied, _normalize_package_name

from agentship.server.core.requirements import mismatches, python_mismatch, requirement_lines
from agentship.server.core.runner import ModelRunner

LINES = [
    f"mlflow=={mlflow.__version__}",
    "mlflow<1",
    f"openai=={openai.__version__}",
    "openai<1",
    "OpenAI>=1",
    "PyYAML>=100",
    "no-such-package-agentship==1.0",
    "pydantic<1; python_version < '3'",
    "databricks-agents==9.9",
    "./a/local/path",
    "git+https://example.invalid/x.git",
]


def test_each_verdict_is_mlflows_own() -> None:
    """As ``warn_dependency_requirement_mismatches`` words them, and leaves out Databricks'."""
    ignored = {"databricks-feature-lookup", "databricks-agents"}
    found = [_check_requirement_satisfied(line) for line in LINES]
    theirs = [
        str(f) for f in found if f is not None and _normalize_package_name(f.package_name) not in ignored
    ]
    assert mismatches(LINES) == theirs
    assert mismatches(LINES) == [
        f"mlflow (current: {mlflow.__version__}, required: mlflow<1)",
        f"openai (current: {openai.__version__}, required: openai<1)",
        "PyYAML (current: {v}, required: PyYAML>=100)".format(v=_version("pyyaml")),
        "no-such-package-agentship (current: uninstalled, required: no-such-package-agentship==1.0)",
    ]


def _version(name: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(name)


def test_requirements_txt_lines() -> None:
    text = "# a comment\nmlflow==3.1  # pinned\n\n-r other.txt\n--index-url https://x.invalid\nopenai>=1\n"
    assert requirement_lines(text) == ["mlflow==3.1", "openai>=1"]


def test_python_mismatch() -> None:
    running = platform.python_version()
    major, minor, *_ = running.split(".")
    assert python_mismatch(f"{major}.{minor}.0") is None
    assert python_mismatch(running) is None
    assert python_mismatch("2.7.18") == (
        f"The model was logged with Python 2.7.18; this is Python {running}. It may not load or run the same."
    )
    assert python_mismatch(None) == (
        f"The model does not record the Python it was logged with; this is Python {running}."
    )


@pytest.mark.e2e
def test_a_model_with_an_unmet_requirement_is_served_with_one_warning_naming_it(
    serving_model_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # never called: the model only loads
    monkeypatch.setenv("AGENTSHIP_STATE_URL", "none")
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=serving_model_uri, dst_path=str(tmp_path)))
    met = (local / "requirements.txt").read_text(encoding="utf-8")
    assert mismatches(requirement_lines(met)) == []  # the registered model's own are all met

    with caplog.at_level(logging.WARNING):
        runner = ModelRunner(str(local))
    runner.close()
    assert _requirement_warnings(caplog) == []

    (local / "requirements.txt").write_text(
        met.rstrip("\n") + "\nopenai<1\nno-such-package-agentship==1.0\n", encoding="utf-8"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        runner = ModelRunner(str(local))
    runner.close()
    assert _requirement_warnings(caplog) == [
        "the model's requirements are not met by this environment:\n"
        f" - openai (current: {openai.__version__}, required: openai<1)\n"
        " - no-such-package-agentship (current: uninstalled, required: no-such-package-agentship==1.0)\n"
        "mlflow.pyfunc.get_model_dependencies(model_uri) writes the model's environment to install."
    ]


def _requirement_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings about requirements: the server's own, and MLflow's (which must not repeat it)."""
    return [
        r.getMessage()
        for r in caplog.records
        if "requirements are not met" in r.getMessage() or "Detected one or more mismatches" in r.getMessage()
    ]
