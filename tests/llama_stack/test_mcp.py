"""MCP servers on the Llama Stack agent, against real servers: a tool group the server calls on
the Agents API (0.2, 0.3), ``mcp`` tools the server calls on Responses (0.7, OGX 1.5), and the
wrapper calling them itself in chat-completions mode (a streamable-HTTP server with a token, and
``mcp-server-time`` over stdio)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentship.errors import ConfigError
from agentship.testing.processes import ServerProcess
from tests.llama_stack.conftest import Target
from tests.llama_stack.test_behaviour import ask, dumped
from tests.serving.mcp_servers import start_docs_server

pytestmark = pytest.mark.llamastack

TOKEN = "mcp-TOKEN-llama-77"


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    logs = tmp_path_factory.mktemp("ls-mcp-logs")
    servers = {
        "open": start_docs_server(logs, None, "ls-docs"),
        "secured": start_docs_server(logs, TOKEN, "ls-docs"),
    }
    yield servers
    for server in servers.values():
        server.stop()


def _servers(target: Target, docs: dict[str, ServerProcess]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    if target.name.startswith("agents"):  # the server registers an endpoint URL: no headers
        return [{"name": "docs", "transport": "streamable_http", "url": f"{docs['open'].url}/mcp"}], {}
    secured = {
        "name": "docs",
        "transport": "streamable_http",
        "url_from_env": "DOCS_URL",
        "headers_from_env": {"X-Docs-Token": "DOCS_TOKEN"},
        "allowed_tools": ["lookup_docs"],
    }
    environ = {"DOCS_URL": f"{docs['secured'].url}/mcp", "DOCS_TOKEN": TOKEN}
    if target.name == "chat":  # the wrapper calls them: stdio too
        return [secured, {"name": "time", "transport": "stdio", "command": "mcp-server-time"}], environ
    return [secured], environ


def test_mcp_tools_run_in_every_mode(target: Target, load: Any, docs: dict[str, ServerProcess]) -> None:
    servers, environ = _servers(target, docs)
    agent = load(target, mcp_servers=servers, environ=environ)
    response = ask(agent, "Please look in the docs about Shields")
    items = dumped(response)
    calls = [i for i in items if i["type"] == "function_call"]
    outputs = [i for i in items if i["type"] == "function_call_output"]
    assert [c["name"] for c in calls] == ["lookup_docs"], items
    assert "The docs on Shields say: deploy with python -m serving." in outputs[0]["output"]
    assert items[-1]["type"] == "message"
    if target.name == "chat":
        assert agent.health() == {"mcp_servers": {"docs": "ok", "time": "ok"}}
        timed = dumped(ask(agent, "What is the current time in UTC?"))
        assert timed[0]["name"] == "get_current_time" and "UTC" in timed[1]["output"]


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        (
            {"name": "t", "transport": "stdio", "command": "mcp-server-time"},
            "whose server calls MCP servers itself",
        ),
        (
            {
                "name": "d",
                "transport": "streamable_http",
                "url": "http://x/mcp",
                "require_approval": "always",
            },
            "require_approval",
        ),
    ],
)
def test_what_a_server_cannot_run_fails_at_load_naming_the_mode(
    server_target: Target, load: Any, server: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load(server_target, mcp_servers=[server])
