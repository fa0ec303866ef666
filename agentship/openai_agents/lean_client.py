"""An ``openai.AsyncOpenAI`` that sends a model call's history as it is, without re-walking it.

Before every request openai-python *transforms* its body against the parameter types: for each
message (Chat Completions) or input item (Responses) it tries every member of the type's unions,
with ``typing`` introspection at each step, to apply the aliases and formats the types declare.
For these two calls the walk changes nothing: their messages, items and tools declare no alias
and no format. Yet it was the largest single cost of a conversation's turn in a CPU profile
(``bench/store_profile.py --yappi``), and it grows with the history the agent resends on every
model call (``bench/lean_client.py`` measures a whole call both ways).

:class:`LeanAsyncOpenAI` moves those lists into ``extra_body``, which openai-python merges into
the body as they are, so the bytes sent are the same. It does so only when

* the list is plain JSON (dicts with string keys, lists, strings, numbers, booleans, None), as the
  Agents SDK builds them: anything else (a pydantic model, a file, an iterator) takes the normal
  path;
* the installed openai-python declares no alias or format anywhere in that parameter's type
  (:func:`transform_free`, checked once per type), so an upgrade that adds one turns this off
  instead of changing a request;
* the caller's own ``extra_body`` does not set that field;
* nothing instruments openai-python's ``create`` (``mlflow.openai.autolog()``, an OpenTelemetry
  instrumentor: :func:`instrumented`), so what such a tool records of a call is what was
  asked, not the moved body. The classes keep openai-python's names for the same reason.
"""

from __future__ import annotations

import functools
import os
import types
import typing
from collections.abc import Mapping
from typing import Any

import openai
from openai.resources.chat import AsyncChat, AsyncCompletions
from openai.resources.responses import AsyncResponses
from openai.types.chat import completion_create_params
from openai.types.responses import response_create_params

__all__ = ["LeanAsyncOpenAI", "instrumented", "lean_params", "plain_json", "transform_free"]

_PLAIN_SCALARS = (str, int, float, bool, type(None))


def plain_json(value: object) -> bool:
    """Whether ``value`` is plain JSON: what openai-python's transform passes through unchanged
    when the type declares no alias or format. Iterative: a deep history cannot overflow."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, _PLAIN_SCALARS):
            continue
        if type(item) is list:
            pending.extend(item)
        elif type(item) is dict:
            if not all(type(key) is str for key in item):
                return False
            pending.extend(item.values())
        else:
            return False
    return True


def _changes_data(annotation: object, seen: set[int]) -> bool:
    """Whether openai-python's transform can change data of type ``annotation``: an alias or a
    format declared anywhere in it (``PropertyInfo``; a discriminator changes nothing)."""
    if id(annotation) in seen:
        return False
    seen.add(id(annotation))
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *metadata = typing.get_args(annotation)
        if any(
            getattr(m, "alias", None) is not None or getattr(m, "format", None) is not None for m in metadata
        ):
            return True
        return _changes_data(inner, seen)
    if typing.is_typeddict(annotation):
        hints = typing.get_type_hints(annotation, include_extras=True)
        return any(_changes_data(hint, seen) for hint in hints.values())
    return any(_changes_data(arg, seen) for arg in typing.get_args(annotation))


@functools.cache
def transform_free(params: type, field: str) -> bool:
    """Whether openai-python's transform leaves ``params``' ``field`` unchanged, whatever its value
    (plain JSON): no alias or format anywhere in the field's type. False if there is no such field."""
    hint = typing.get_type_hints(params, include_extras=True).get(field)
    return hint is not None and not _changes_data(hint, set())


def lean_params(params: Mapping[str, Any], fields: Mapping[str, type]) -> dict[str, Any]:
    """``params`` with each of ``fields`` that is a plain-JSON list moved into ``extra_body`` (an
    empty list stands in its place), when the transform would leave it unchanged anyway;
    ``fields`` maps each field to the parameter type that declares it."""
    extra = params.get("extra_body")
    if extra is not None and not isinstance(extra, dict):
        return dict(params)
    moved = {
        field: params[field]
        for field, declared in fields.items()
        if type(params.get(field)) is list
        and field not in (extra or {})
        and transform_free(declared, field)
        and plain_json(params[field])
    }
    if not moved:
        return dict(params)
    return {**params, **{field: [] for field in moved}, "extra_body": {**(extra or {}), **moved}}


def _chat_fields(stream: object) -> dict[str, type]:
    declared = (
        completion_create_params.CompletionCreateParamsStreaming
        if stream
        else completion_create_params.CompletionCreateParamsNonStreaming
    )
    return {"messages": declared, "tools": declared}


def _responses_fields(stream: object) -> dict[str, type]:
    declared = (
        response_create_params.ResponseCreateParamsStreaming
        if stream
        else response_create_params.ResponseCreateParamsNonStreaming
    )
    return {"input": declared, "tools": declared}


_OPENAI_DIR = os.path.dirname(openai.__file__) + os.sep


def instrumented(resource: type) -> bool:
    """Whether something replaced openai-python's own ``resource.create``: it is no longer a
    function defined in openai-python (``__wrapped__`` cannot tell: openai-python's own
    ``required_args`` decorator sets it too)."""
    create = getattr(resource, "create", None)
    return not (
        isinstance(create, types.FunctionType) and create.__code__.co_filename.startswith(_OPENAI_DIR)
    )


class _LeanCompletions(AsyncCompletions):
    async def create(self, **params: Any) -> Any:  # type: ignore[override]
        if instrumented(AsyncCompletions):
            return await super().create(**params)
        return await super().create(**lean_params(params, _chat_fields(params.get("stream"))))


class _LeanChat(AsyncChat):
    @functools.cached_property
    def completions(self) -> AsyncCompletions:
        return _LeanCompletions(self._client)


class _LeanResponses(AsyncResponses):
    async def create(self, **params: Any) -> Any:  # type: ignore[override]
        if instrumented(AsyncResponses):
            return await super().create(**params)
        return await super().create(**lean_params(params, _responses_fields(params.get("stream"))))


# Tracing tools name a call's span after its resource's class.
for _lean, _original in ((_LeanCompletions, AsyncCompletions), (_LeanResponses, AsyncResponses)):
    _lean.__name__, _lean.__qualname__ = _original.__name__, _original.__qualname__


class LeanAsyncOpenAI(openai.AsyncOpenAI):
    """``openai.AsyncOpenAI``, whose ``chat.completions.create`` and ``responses.create`` send
    plain-JSON messages, input items and tools without openai-python's request transform."""

    @functools.cached_property
    def chat(self) -> AsyncChat:
        return _LeanChat(self)

    @functools.cached_property
    def responses(self) -> AsyncResponses:
        return _LeanResponses(self)
