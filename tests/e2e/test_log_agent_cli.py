"""logging_scripts/log_agent.py as a user runs it: defaults, overrides and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.e2e.helpers import download_model, run_log_agent

pytestmark = pytest.mark.e2e


def test_without_a_tracking_uri_it_uses_a_local_sqlite_store(tmp_path: Path) -> None:
    result = run_log_agent("--agent", "openai-agents", env={"MLFLOW_TRACKING_URI": ""}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "models:/openai-agents-assistant/1"
    assert (tmp_path / "mlflow.db").is_file()


def test_experiment_name_and_overrides_are_honoured(tmp_path: Path) -> None:
    result = run_log_agent(
        "--agent", "openai-agents", "--registered-model-name", "cli-overrides",
        "--set", "model=gpt-4.1-mini", "--set", "max_turns=3",
        env={"MLFLOW_EXPERIMENT_NAME": "cli-experiment"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    uri = result.stdout.strip().splitlines()[-1]
    config = yaml.safe_load((download_model(uri, tmp_path) / "MLmodel").read_text())["flavors"][
        "python_function"
    ]["config"]
    assert (config["model"], config["max_turns"]) == ("gpt-4.1-mini", 3)
    experiment = MlflowClient().get_experiment_by_name("cli-experiment")
    assert experiment is not None
    runs = MlflowClient().search_runs([experiment.experiment_id])
    assert runs and runs[0].data.tags["agentship.agent_kind"] == "openai-agents"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "max_turns=0"], "max_turns: Input should be greater than or equal to 1"),
        (["--set", "tools=[agentship.examples.tools:nope]"], "has no attribute 'nope'"),
        (["--set", "temperature=0.1"], "temperature: Extra inputs are not permitted"),
        (["--config", "/no/such/file.yaml"], "cannot read config file /no/such/file.yaml"),
        (["--set", "agent_type=llama-stack"], "config is for agent_type 'llama-stack'"),
    ],
)
def test_bad_configs_fail_before_anything_is_logged(args: list[str], message: str) -> None:
    result = run_log_agent("--agent", "openai-agents", "--registered-model-name", "cli-bad", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert MlflowClient().search_registered_models(filter_string="name = 'cli-bad'") == []


def test_mlproject_log_entry_point(tmp_path: Path) -> None:
    import subprocess
    import sys

    from agentship.testing.processes import venv_env
    from tests.e2e.helpers import REPO

    result = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", "log", "--env-manager", "local",
         "-P", "name=mlproject-agent", "-P", "alias=prod"],
        env=venv_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "models:/mlproject-agent/1"
    assert str(MlflowClient().get_model_version_by_alias("mlproject-agent", "prod").version) == "1"
