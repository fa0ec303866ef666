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


def test_top_level_agents_and_configs_link_to_the_package() -> None:
    """The package is the source of truth; the repository's agents/ and configs/ point into it."""
    for top, inside, pattern in (
        ("agents", "agentship/model_code", "*_agent.py"),
        ("configs", "agentship/configs", "*.yaml"),
    ):
        shipped = sorted(p.name for p in (REPO / inside).glob(pattern))
        linked = sorted(p.name for p in (REPO / top).iterdir())
        assert shipped and linked == shipped, top
        for name in linked:
            assert (REPO / top / name).is_symlink()
            assert (REPO / top / name).resolve() == (REPO / inside / name).resolve()


def test_the_wheel_declares_the_command_the_configs_and_the_extras() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"] == {"agentship": "agentship.cli:main"}
    assert "configs/*.yaml" in pyproject["tool"]["setuptools"]["package-data"]["agentship"]
    assert {"a2a", "otlp", "ray"} <= set(pyproject["project"]["optional-dependencies"])
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["include"] == ["agentship*"]
    assert pyproject["project"]["name"] == "agentship-mlflow"  # "agentship" on PyPI is another project


def test_setup_compiled_the_venv_and_the_checkout_to_bytecode() -> None:
    """scripts/setup.sh compiles what the server imports, so no process compiles it again (with
    PYTHONDONTWRITEBYTECODE set, as on this project's CI machines, each one would)."""
    import importlib
    import importlib.util

    for name in ("mlflow", "agents", "openai", "sqlalchemy", "starlette", "agentship.server.app"):
        source = importlib.import_module(name).__file__
        assert source is not None
        assert Path(importlib.util.cache_from_source(source)).is_file(), f"{name} has no bytecode"
