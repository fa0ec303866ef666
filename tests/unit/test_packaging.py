"""The project's own files agree with each other."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_conda_env_declares_the_same_dependencies_as_pyproject() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert [d for d in pip_section if d != "-e ."] == pyproject["project"]["dependencies"]
    python = next(d for d in conda["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python == "python=3.12"
    assert pyproject["project"]["requires-python"] == ">=3.12"


def test_mlproject_uses_the_conda_env_and_has_log_and_serve_entry_points() -> None:
    project = yaml.safe_load((REPO / "MLproject").read_text())
    assert project["conda_env"] == "conda.yaml"
    assert {"log", "serve", "main"} <= set(project["entry_points"])


def test_agents_directory_cannot_shadow_the_agents_sdk() -> None:
    import agents

    assert not (REPO / "agents" / "__init__.py").exists()
    assert "site-packages" in str(agents.__file__)
    assert hasattr(agents, "Runner")
