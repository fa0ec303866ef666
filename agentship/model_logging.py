"""Log an agent as an MLflow model from code, and register it.

The model is logged from the code file in ``agentship/model_code/`` (the repository's
``agents/`` links to it), with the package in ``code_paths`` (so the served model finds it without
installing anything), the config as ``model_config``, pinned requirements (so
``mlflow models serve`` can rebuild the environment), and the agentship version in the model's
metadata (``agentship_version``; :mod:`agentship.compat` says which servers may serve it). MLflow's
log-time prediction on the input example is answered offline: logging never needs the backend.
The example configs ship in the package too (``agentship/configs/``), so an installed wheel has
everything the repository has.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mlflow
import yaml
from mlflow.tracking import MlflowClient

import agentship
from agentship.compat import VERSION_KEY
from agentship.errors import ConfigError
from agentship.imports import import_object
from agentship.log_time import offline_validation

_logger = logging.getLogger(__name__)

AgentKind = Literal["openai-agents", "llama-stack"]

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIGS_DIR = PACKAGE_DIR / "configs"
"""The example model configs (the repository's ``configs/`` links to them)."""

AGENT_CODE: dict[str, Path] = {
    "openai-agents": PACKAGE_DIR / "model_code" / "openai_agents_agent.py",
    "llama-stack": PACKAGE_DIR / "model_code" / "llama_stack_agent.py",
}
DEFAULT_CONFIGS: dict[str, Path] = {
    "openai-agents": CONFIGS_DIR / "openai_agents.yaml",
    "llama-stack": CONFIGS_DIR / "llama_stack.yaml",
}
DEFAULT_NAMES: dict[str, str] = {
    "openai-agents": "openai-agents-assistant",
    "llama-stack": "llama-stack-assistant",
}
_CONFIG_VALIDATORS: dict[str, str] = {
    "openai-agents": "agentship.openai_agents.config:validate_for_logging",
    "llama-stack": "agentship.llama_stack.config:validate_for_logging",
}
_STATE = ("sqlalchemy", "greenlet", "alembic", "aiosqlite", "asyncpg")
"""The state store's drivers (conversations, paused runs)."""
_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "openai-agents": (
        "mlflow",
        "openai-agents",
        "openai",
        "mcp",
        "pydantic",
        "pyyaml",
        "httpx",
        "jsonschema",
        *_STATE,
    ),
    # openai-agents: client tools load as FunctionTools, and two modes run on the Agents SDK.
    "llama-stack": ("mlflow", "openai-agents", "openai", "pydantic", "pyyaml", "httpx", "httpx2", *_STATE),
}


@dataclass(frozen=True)
class LoggedAgent:
    model_uri: str
    """``models:/NAME/VERSION`` when registered, else the ``runs:/`` or ``models:/<id>`` URI."""
    run_id: str
    registered_name: str | None
    version: str | None


def agent_summary(config: Mapping[str, Any]) -> dict[str, Any]:
    """name, model and tools_count of a logged model's config (for clients' exchange logs). Pure."""
    tools = sum(len(config.get(k, []) or []) for k in ("tools", "client_tools", "toolgroups"))
    return {
        "name": config.get("name", "unknown"),
        "model": config.get("model", "unknown"),
        "tools_count": tools,
    }


def logged_config(pyfunc: Any) -> dict[str, Any]:
    """The model config recorded with a loaded pyfunc model (empty when it has none)."""
    return dict(pyfunc.metadata.flavors.get("python_function", {}).get("config", {}) or {})


def example_configs() -> dict[str, Path]:
    """The example configs shipped in the package, by name (``openai_agents``, …)."""
    return {path.stem: path for path in sorted(CONFIGS_DIR.glob("*.yaml"))}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON model config."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {file} is not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {file} must hold a mapping at its top level")
    return data


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides (values parsed as YAML) to a config's top-level fields."""
    out = dict(config)
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {override!r} is not KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {override!r}: value is not valid YAML: {exc}") from exc
    return out


def pinned_requirements(kind: AgentKind) -> list[str]:
    """``name==version`` for each runtime dependency, as installed here."""
    pins = []
    for dist in _REQUIREMENTS[kind]:
        try:
            pins.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            _logger.warning("requirement %s is not installed; recording it unpinned", dist)
            pins.append(dist)
    return pins


def log_agent(
    kind: AgentKind,
    config: Mapping[str, Any],
    *,
    registered_model_name: str | None = None,
    alias: str | None = None,
    extra_code_paths: Sequence[str | Path] = (),
    artifact_name: str = "agent",
) -> LoggedAgent:
    """Log the ``kind`` agent with ``config``; register it when a name is given.

    It logs into the active run if there is one, else into a new run.
    """
    if kind not in AGENT_CODE:
        raise ConfigError(f"unknown agent kind {kind!r}; choose one of {sorted(AGENT_CODE)}")
    declared = config.get("agent_type")
    if declared and declared != kind:
        raise ConfigError(f"config is for agent_type {declared!r}, not {kind!r}")
    if alias and not registered_model_name:
        raise ConfigError("--alias needs a registered model name")
    import_object(_CONFIG_VALIDATORS[kind])(dict(config))
    code_paths = [str(PACKAGE_DIR), *(str(Path(p).resolve()) for p in extra_code_paths)]
    active = mlflow.active_run()
    run_context = nullcontext(active) if active else mlflow.start_run(run_name=f"log-{kind}")
    with run_context as run, offline_validation():
        mlflow.set_tags(
            {
                "agentship.agent_kind": kind,
                "agentship.agent_name": str(config.get("name", "")),
                "agentship.version": agentship.__version__,
            }
        )
        info = mlflow.pyfunc.log_model(
            name=artifact_name,
            python_model=str(AGENT_CODE[kind]),
            model_config=dict(config),
            code_paths=code_paths,
            pip_requirements=pinned_requirements(kind),
            registered_model_name=registered_model_name,
            metadata={VERSION_KEY: agentship.__version__},
        )
    version = None
    uri = info.model_uri
    if registered_model_name:
        version = str(info.registered_model_version)
        uri = f"models:/{registered_model_name}/{version}"
        if alias:
            MlflowClient().set_registered_model_alias(registered_model_name, alias, version)
    return LoggedAgent(uri, run.info.run_id, registered_model_name, version)
