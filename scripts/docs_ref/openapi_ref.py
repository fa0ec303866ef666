"""The HTTP API's page, from an OpenAPI document when there is one. Pure."""

from __future__ import annotations

from typing import Any

from docs_ref.md import cell, code, table

METHODS = ("get", "put", "post", "delete", "patch", "options", "head")


def operations(spec: dict[str, Any]) -> list[list[str]]:
    """One row per operation: method, path, summary, and the response statuses it documents."""
    rows: list[list[str]] = []
    for path, item in sorted(spec.get("paths", {}).items()):
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            summary = operation.get("summary") or operation.get("description", "").split("\n\n")[0]
            statuses = ", ".join(code(str(s)) for s in operation.get("responses", {}))
            rows.append([method.upper(), code(path), cell(summary), statuses])
    return rows


def render(spec: dict[str, Any] | None, file_name: str) -> str:
    """The page's body: the operations and a link to the document, or a note that it is coming."""
    if spec is None:
        return (
            '!!! note "The OpenAPI document is not here yet"\n'
            f"    This page lists the server's operations from `docs/reference/{file_name}`, an\n"
            "    export of the OpenAPI document the server serves at `/openapi.json`. Until that\n"
            "    file exists, the routes are described in [Serving](../guides/serving.md#routes).\n"
        )
    info = spec.get("info", {})
    title = f"{info.get('title', 'The API')} {info.get('version', '')}".strip()
    head = (
        f"{title}, from [`{file_name}`]({file_name}) (OpenAPI {spec.get('openapi', '?')}): "
        "load it into any OpenAPI viewer or client generator.\n\n"
    )
    return head + table(["Method", "Path", "Summary", "Responses"], operations(spec))
