"""A real streamable-HTTP MCP server for the tests, written with the ``mcp`` SDK (its MCPServer,
FastMCP before mcp 2). It only answers requests that carry the token ``DOCS_MCP_TOKEN``.

    DOCS_MCP_TOKEN=t uvicorn tests.serving.mcp_servers.docs_server:app --port 8765
"""

from __future__ import annotations

import base64
import os
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ContentBlock, EmbeddedResource, ImageContent, TextContent, TextResourceContents
from starlette.responses import JSONResponse

server = MCPServer("docs")


@server.tool()
def lookup_docs(topic: str) -> str:
    """Look a topic up in the product docs."""
    return f"The docs on {topic} say: deploy with python -m serving."


PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 56).decode()
"""A 64-byte stand-in for a PNG image."""


@server.tool()
def fetch_bundle(topic: str) -> list[ContentBlock]:
    """The docs on a topic as several content blocks: text, a diagram, the source page."""
    return [
        TextContent(type="text", text=f"Bundle on {topic}:"),
        TextContent(type="text", text="Traces are kept in MLflow."),
        ImageContent(type="image", data=PIXEL, mime_type="image/png"),
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri=f"docs://{topic}", mime_type="text/plain", text=f"{topic}: see the README."
            ),
        ),
    ]


@server.tool()
def explode(reason: str) -> str:
    """A tool that always fails."""
    raise RuntimeError(f"the explode tool failed on purpose ({reason})")


@server.tool()
def delete_docs(topic: str) -> str:
    """Never offered to the agent: its config blocks it."""
    return f"deleted {topic}"


_mcp_app = server.streamable_http_app(streamable_http_path="/mcp")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The MCP app behind a header check."""
    if scope["type"] == "http" and scope["path"] == "/health":
        await JSONResponse({"status": "ok"})(scope, receive, send)
        return
    if scope["type"] == "http":
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        if headers.get("x-docs-token") != os.environ.get("DOCS_MCP_TOKEN"):
            await JSONResponse({"error": "bad token"}, status_code=401)(scope, receive, send)
            return
    await _mcp_app(scope, receive, send)
