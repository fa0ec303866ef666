"""``GET /openapi.json``: an OpenAPI 3.1 document of every route the server has, generated.

The routes come from the server's one route table (:mod:`agentship.server.routes`), each with
its :class:`~.operation.Operation`; the JSON Schemas come from the types the routes read and
answer with (the ``/responses`` body model, openai-python's ``Response``, ``Conversation``,
``ConversationItem``…), through pydantic (``TypeAdapter.json_schemas``), so a field a type
gains is a field the document shows. ``scripts/openapi.py`` exports it to
``docs/reference/openapi.json``.
"""

from __future__ import annotations

import asyncio
import json
import re
import typing
from collections.abc import Iterable
from typing import Any, Literal

import pydantic
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema
from starlette.requests import Request
from starlette.responses import Response

import agentship
from agentship.server.core.errors import ErrorBody
from agentship.server.http.operation import JSON, SSE, Documented, Operation

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{(\w+)}")
DESCRIPTION = (
    "An agent served by agentship: MLflow's /invocations, OpenAI's Responses API (/v1/responses) "
    "and Conversations API (/v1/conversations), and, with --a2a, the Agent2Agent protocol. Errors "
    "are in OpenAI's shape. With bearer keys on (AGENTSHIP_API_KEYS), every route but /health, "
    "/ready, /metrics, /openapi.json, the agent card and the playground's page and files needs one."
)

type Key = tuple[Any, JsonSchemaMode]


def _keys(entries: list[Documented]) -> list[Key]:
    keys: list[Key] = [(ErrorBody, "serialization")]
    for entry in entries:
        op = entry.operation
        keys += [(op.body, "validation")] if op.body is not None else []
        keys += [(op.reply, "serialization")] if op.reply is not None else []
        keys += [(op.events, "serialization")] if op.events is not None else []
    return list(dict.fromkeys(keys))


def _renamed(definitions: dict[str, Any]) -> dict[str, str]:
    """Short component names: a class's own name, qualified by as little of its module's path
    as tells it from the other classes of that name (``conversation.Conversation``)."""
    parts = {name: name.split("__") for name in definitions}
    names: dict[str, str] = {}
    for name, path in parts.items():
        for length in range(1, len(path) + 1):
            candidate = ".".join(path[-length:])
            rivals = [n for n, other in parts.items() if n != name and ".".join(other[-length:]) == candidate]
            if not rivals:
                break
        names[name] = candidate
    return names


def _rewritten(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _rewritten(v, names) for k, v in value.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            out["$ref"] = REF.format(model=names[ref.rsplit("/", 1)[-1]])
        return out
    if isinstance(value, list):
        return [_rewritten(v, names) for v in value]
    return value


class _StableSchema(GenerateJsonSchema):
    """Union members in one order, whatever the process imported first: ``typing`` caches a
    union by its members as a set, so ``str | float`` may come back as ``float | str`` (and a
    model's validation and serialization schemas then differ, and are named apart)."""

    def union_schema(self, schema: core_schema.UnionSchema) -> JsonSchemaValue:
        out = super().union_schema(schema)
        if isinstance(out.get("anyOf"), list):
            out["anyOf"] = sorted(out["anyOf"], key=lambda choice: json.dumps(choice, sort_keys=True))
        return out


def schemas(keys: list[Key]) -> tuple[dict[Key, Any], dict[str, Any]]:
    """Each type's schema (a ``$ref`` for models), and the components they refer to."""
    inputs = [(key[0], key[1], pydantic.TypeAdapter(key[0])) for key in keys]
    by_key, definitions = pydantic.TypeAdapter.json_schemas(
        inputs, ref_template=REF, schema_generator=_StableSchema
    )
    defs = definitions.get("$defs", {})
    names = _renamed(defs)
    components = {names[name]: _rewritten(schema, names) for name, schema in defs.items()}
    return {key: _rewritten(schema, names) for key, schema in by_key.items()}, dict(
        sorted(components.items())
    )


def _parameters(entry: Documented) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(entry.path)
    ]
    for param in entry.operation.query:
        schema = {"type": "array", "items": param.schema} if param.many else param.schema
        out.append(
            {
                "name": param.name,
                "in": "query",
                "required": False,
                "description": param.description,
                "schema": schema,
            }
        )
    for param in entry.operation.headers:
        out.append(
            {
                "name": param.name,
                "in": "header",
                "required": False,
                "description": param.description,
                "schema": param.schema,
            }
        )
    return out


def event_names(events: Any) -> list[str]:
    """The ``type`` values of a union of event models (the SSE ``event:`` names), sorted."""
    names: set[str] = set()
    for member in typing.get_args(events) or (events,):
        if typing.get_origin(member) is not None:  # Annotated[Union[...], ...], or a nested union
            names.update(event_names(member))
        elif isinstance(member, type) and issubclass(member, pydantic.BaseModel):
            field = member.model_fields.get("type")
            if field is not None and typing.get_origin(field.annotation) is Literal:
                names.update(typing.get_args(field.annotation))
    return sorted(names)


def _event_schema(op: Operation, by_key: dict[Key, Any]) -> dict[str, Any]:
    """One server-sent event, as OpenAPI 3.1 describes an event stream's item: ``event`` its
    name (the data's ``type``, or none: ``message``), ``data`` the JSON of ``op.events``."""
    data: dict[str, Any] = {"type": "string"}
    event: dict[str, Any] = {"type": "string"}
    if op.events is not None:
        data |= {"contentMediaType": JSON, "contentSchema": by_key[(op.events, "serialization")]}
        if names := event_names(op.events):
            event["enum"] = names
    return {
        "type": "object",
        "required": ["data"],
        "properties": {"event": event, "data": data, "id": {"type": "string"}, "retry": {"type": "integer"}},
    }


def _success(op: Operation, by_key: dict[Key, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for media in op.media:
        if media == JSON:
            content[JSON] = {"schema": by_key[(op.reply, "serialization")] if op.reply is not None else {}}
        elif media == SSE:
            content[SSE] = {"schema": _event_schema(op, by_key)}
        else:
            content[media] = {"schema": {"type": "string"}}
    success: dict[str, Any] = {"description": op.summary, "content": content}
    if op.reply_headers:
        success["headers"] = {
            p.name: {"description": p.description, "schema": p.schema} for p in op.reply_headers
        }
    return success


def _operation(entry: Documented, by_key: dict[Key, Any]) -> dict[str, Any]:
    op = entry.operation
    out: dict[str, Any] = {"operationId": op.id, "summary": op.summary, "tags": [op.tag]}
    if op.description:
        out["description"] = op.description
    if parameters := _parameters(entry):
        out["parameters"] = parameters
    if op.body is not None:
        body = {"schema": by_key[(op.body, "validation")]}
        out["requestBody"] = {"required": op.body_required, "content": {JSON: body}}
    error = {"schema": by_key[(ErrorBody, "serialization")]}
    out["responses"] = {
        str(op.status): _success(op, by_key),
        "default": {"description": "An error, in OpenAI's shape.", "content": {JSON: error}},
    }
    if op.open:
        out["security"] = []
    return out


def document(entries: Iterable[Documented]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``entries`` (the server's routes, or its route table)."""
    listed = list(entries)
    by_key, components = schemas(_keys(listed))
    paths: dict[str, dict[str, Any]] = {}
    for entry in listed:
        paths.setdefault(entry.path, {})[entry.method.lower()] = _operation(entry, by_key)
    bearer = {
        "type": "http",
        "scheme": "bearer",
        "description": "A key of the server's (AGENTSHIP_API_KEYS); only when it runs with keys.",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "agentship agent server",
            "version": agentship.__version__,
            "description": DESCRIPTION,
        },
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"bearer": bearer}},
        "security": [{"bearer": []}, {}],
    }


class OpenApiEndpoint:
    """Serves the document of the routes it is given, made on first use (off the event loop)."""

    def __init__(self, entries: list[Documented]) -> None:
        self.entries = entries
        self._body: bytes | None = None

    async def serve(self, request: Request) -> Response:
        if self._body is None:
            made = await asyncio.to_thread(document, self.entries)
            self._body = json.dumps(made, ensure_ascii=False).encode()
        return Response(self._body, media_type=JSON)
