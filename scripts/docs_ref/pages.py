"""The reference pages, put together from the code: each function returns one page's Markdown.

They import the project (and so MLflow), so they run with the project's Python; the rendering
they call is pure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from docs_ref import cli_ref, config_ref, env_ref, metrics_ref, openapi_ref
from docs_ref.env_catalog import SERVING_EXTRA, SERVING_NOTES
from docs_ref.md import GENERATED, code

OPENAPI_FILE = "openapi.json"


def cli_page() -> str:
    from agentship import cli
    from agentship.client.cli import _parser as client_parser
    from agentship.evaluation.cli import build_parser as evaluate_parser
    from agentship.llama_stack.ingest_cli import EXIT_CODES, ingest_parser
    from agentship.log_cli import build_parser as log_parser
    from agentship.server.cli import _parser as serve_parser

    evaluate = evaluate_parser()
    evaluate.prog = "agentship evaluate"
    commands = [
        cli_ref.Command(
            "agentship serve",
            serve_parser("agentship serve"),
            "The limits and the state settings reach every worker as environment variables, which "
            "can be set instead of the flags ([Environment](environment.md#the-server)).",
        ),
        cli_ref.Command(
            "agentship log",
            log_parser("agentship log"),
            "From a checkout: `python logging_scripts/log_agent.py`; `mlflow run . -e log`. "
            "The last line of stdout is the model URI; exit code 2 on a config error.",
        ),
        cli_ref.Command(
            "agentship client",
            client_parser("agentship client"),
        ),
        cli_ref.Command(
            "agentship evaluate",
            evaluate,
            "From a checkout: `python logging_scripts/evaluate_agent.py`; `mlflow run . -e evaluate`. "
            "Exit codes: 0 evaluated (and the gate passed), 1 the gate failed, 2 a usage error, "
            "3 the evaluation failed midway.",
        ),
        cli_ref.Command(
            "agentship llama-stack ingest",
            ingest_parser("agentship llama-stack ingest"),
            "Prints only the vector store's id on stdout (`VS=$(agentship llama-stack ingest docs/)`); "
            "the server's key is read from `LLAMASTACK_API_KEY`. See "
            "[RAG](../guides/llama-stack-agent.md#rag-a-vector-store-from-a-folder). Exit codes: "
            + "; ".join(f"`{code}` {meaning}" for code, meaning in EXIT_CODES.items())
            + ".",
        ),
    ]
    top = cli._USAGE.strip()
    return (
        f"{GENERATED}# Command line\n\n"
        "Every command is a subcommand of `agentship`, the console script of the installed package "
        "(`pip install agentship-mlflow`; in a checkout, `.venv/bin/agentship`). Each takes the flags "
        "of the command it stands for. The tables below are generated from the commands' own "
        "parsers.\n\n"
        f"```text\n{top}\n```\n\n"
        + "\n".join(cli_ref.render(c) for c in commands)
        + "\n## agentship configs\n\n"
        "`agentship configs` lists the example model configs shipped in the package (name and path); "
        "`agentship configs --copy DIR` copies them into `DIR`, to start from.\n\n"
        "## python -m agentship.state\n\n"
        "```text\npython -m agentship.state {upgrade,current,head} [URL]\n```\n\n"
        "Manages the state store's schema: `upgrade` applies the migrations, `current` prints the "
        "store's revision, `head` the installed agentship's. `URL` defaults to "
        f"{code('AGENTSHIP_STATE_URL')} (then the SQLite file beside the tracking store). "
        "See [Migrations](../guides/operations.md#migrations).\n"
    )


def _openai_sections() -> list[config_ref.Section]:
    from agentship.openai_agents import config as c

    return [
        config_ref.Section(
            c.OpenAIAgentsConfig,
            "The entry agent",
            "openaiagentsconfig",
            "`agent_type: openai-agents`. The entry agent's fields, and the run's settings.",
            {"agent_type": "Which agent the config is for."},
        ),
        config_ref.Section(
            c.SubAgentConfig,
            "Handoffs",
            "subagentconfig",
            "Each of `handoffs` is an agent of its own, with the same agent fields.",
        ),
        config_ref.Section(
            c.McpServerConfig,
            "MCP servers",
            "mcpserverconfig",
            "Each of `mcp_servers` (both agents take the same list).",
            {"transport": "How it is reached.", "cwd": "stdio: the working directory it starts in."},
        ),
        config_ref.Section(
            c.HostedToolConfig, "Hosted tools", "hostedtoolconfig", "", {"type": "Which hosted tool."}
        ),
    ]


def _llama_sections() -> list[config_ref.Section]:
    from agentship.llama_stack import config as c

    return [
        config_ref.Section(
            c.LlamaStackConfig,
            "The agent",
            "llamastackconfig",
            "`agent_type: llama-stack`. What each field does in each mode is in the "
            "[Llama Stack guide](../guides/llama-stack-agent.md).",
            {
                "agent_type": "Which agent the config is for.",
                "name": "The agent's name.",
                "instructions": "The system prompt.",
                "toolgroups": "Tool groups the server runs: ids, or `{name, args}`.",
                "sampling": "Sampling settings.",
                "session": "Conversations kept per process when there is no state store.",
                "request_timeout_s": "Timeout of one call to the server.",
                "max_retries": "Retries of a call that never reached the server (after that, only "
                "reads and deletes are retried).",
            },
        ),
        config_ref.Section(c.Toolgroup, "Tool groups", "toolgroup"),
        config_ref.Section(
            c.Sampling,
            "Sampling",
            "sampling",
            "",
            {
                "temperature": "Sampling temperature.",
                "top_p": "Nucleus sampling's probability mass.",
                "max_tokens": "Tokens per answer, at most.",
            },
        ),
        config_ref.Section(c.SessionPolicy, "Sessions", "sessionpolicy"),
    ]


def config_page() -> str:
    import dataclasses

    from agents import ModelSettings

    openai, llama = _openai_sections(), _llama_sections()
    links = {s.model: f"#{s.anchor}" for s in [*openai, *llama]}
    settings = ", ".join(code(f.name) for f in dataclasses.fields(ModelSettings))
    return (
        f"{GENERATED}# Model config\n\n"
        "A model config is the YAML (or JSON) file `agentship log --config` records with the model: "
        "everything that defines the agent's behaviour, and nothing secret (endpoints and keys are "
        "read from the [environment](environment.md) when the model is served). It is validated "
        "at log time: an unknown field, a value out of bounds or a tool that does not import fails "
        "with exit code 2 and a message naming the field. `agentship configs` lists the examples. "
        "The tables are generated from the pydantic models in `agentship/openai_agents/config.py` "
        "and `agentship/llama_stack/config.py`.\n\n"
        "## OpenAI Agents SDK agent\n\n"
        + "\n".join(config_ref.render(s, links) for s in openai)
        + "\n### Model settings { #model-settings }\n\n"
        "`model_settings` takes the fields of the installed SDK's `agents.ModelSettings`, checked at "
        f"log time (a typo such as `temprature`, or a wrong type, fails naming it): {settings}.\n\n"
        "## Llama Stack agent\n\n"
        + "\n".join(config_ref.render(s, links) for s in llama)
        + "\n`mcp_servers` takes the same entries as the OpenAI agent's "
        "([MCP servers](#mcpserverconfig)).\n"
    )


def env_entries() -> list[env_ref.EnvVar]:
    import inspect

    from agentship.server import cli
    from agentship.server.settings import ServerSettings

    parser = cli._parser("agentship serve")
    options = {a.dest: _long(a.option_strings) for a in parser._actions if a.option_strings}
    flags = env_ref.flags_for(inspect.getsource(cli), options)
    return env_ref.all_entries(env_ref.serving_vars(ServerSettings, flags, SERVING_NOTES, SERVING_EXTRA))


def _long(flags: Sequence[str]) -> str:
    """The first long flag (``--timeout`` of ``-t, --timeout, --request-timeout``)."""
    return next((f for f in flags if f.startswith("--")), flags[0])


def env_found(repo: Path) -> dict[str, set[str]]:
    import dataclasses

    from agentship.server.settings import ServerSettings

    return env_ref.scan(repo, [f.name for f in dataclasses.fields(ServerSettings)])


def env_page(repo: Path) -> str:
    return (
        f"{GENERATED}# Environment variables\n\n"
        "Every variable agentship's code reads, found in its source (`scripts/docs_ref/env_ref.py`; "
        "`tests/unit/test_docs.py` fails when one is missing here), with a few that MLflow or "
        "OpenTelemetry read on its behalf. Serve-time settings are read when the server or the "
        "model starts, never recorded in a model.\n\n" + env_ref.render(env_entries(), env_found(repo))
    )


def metrics_page() -> str:
    import prometheus_client

    import agentship.server.app  # noqa: F401 - registers every metric the server exports

    return (
        f"{GENERATED}# Metrics\n\n"
        "`GET /metrics` answers in Prometheus's text format (prometheus-client), without a bearer key. "
        "With `-w N` workers the workers' metrics are summed, so any worker answers the scrape for "
        "all ([Operations](../guides/operations.md#metrics)). Generated from the server's registry:\n\n"
        + metrics_ref.render(metrics_ref.metrics(prometheus_client.REGISTRY))
    )


def http_api_page(reference_dir: Path) -> str:
    path = reference_dir / OPENAPI_FILE
    spec = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return f"{GENERATED}# HTTP API\n\n" + openapi_ref.render(spec, OPENAPI_FILE)


def write_all(repo: Path) -> list[Path]:
    """Write every generated page into ``docs/reference/``; the paths written."""
    out = repo / "docs" / "reference"
    out.mkdir(parents=True, exist_ok=True)
    pages = {
        "cli.md": cli_page(),
        "config.md": config_page(),
        "environment.md": env_page(repo),
        "metrics.md": metrics_page(),
        "http-api.md": http_api_page(out),
    }
    written = []
    for name, text in pages.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
