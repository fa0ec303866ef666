"""Tool results as text: one shape for the model on the live turn, in the response, in the trace
and in a replayed history. Pure.

An MCP tool answers with content blocks. The SDK hands them to the model as content parts on
the live turn (``[{"type": "input_text", ...}]``), and a non-text block as its JSON; sent back
in a history, the same result was the JSON of the block. Here, instead:

* :func:`mcp_content_text`: the blocks as one text. Text blocks are joined by newlines, an
  embedded text resource gives its text, and an image, audio, binary resource or resource link
  is described (``[image: image/png, 2048 bytes]``), never dumped as JSON. (An ``mcp_call``'s
  output is a string in the Responses API, so an image cannot be carried there as itself.)
* :func:`tool_output_text`: a tool's return value (a string, the SDK's text/image outputs, a
  list of them) as the ``function_call_output`` text; :func:`parts_as_text`, the same for the
  trace's TOOL span, which keeps any other value as it is.
* :func:`outputs_as_text`: the model's input with every tool output made of text parts alone
  given as that text, so the live turn matches the history a client sends back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agents.run_config import CallModelData, ModelInputData

_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _base64_size(data: Any) -> int:
    text = str(data or "")
    return max(len(text) * 3 // 4 - text[-2:].count("="), 0)


def _describe(kind: str, mime: Any, data: Any) -> str:
    return f"[{kind}: {mime or 'unknown type'}, {_base64_size(data)} bytes]"


def _resource_text(resource: Any) -> str:
    text = _get(resource, "text")
    if isinstance(text, str):
        return text
    return f"[resource: {_get(resource, 'uri')}, {_get(resource, 'mime_type', 'mimeType') or 'unknown type'}, {_base64_size(_get(resource, 'blob'))} bytes]"


def block_text(block: Any) -> str:
    """One MCP content block as text."""
    kind = _get(block, "type")
    if kind == "text":
        return str(_get(block, "text") or "")
    if kind in ("image", "audio"):
        return _describe(kind, _get(block, "mime_type", "mimeType"), _get(block, "data"))
    if kind == "resource":
        return _resource_text(_get(block, "resource"))
    if kind == "resource_link":
        name = _get(block, "title", "name") or "resource"
        return f"[resource link: {name} <{_get(block, 'uri')}>]"
    return f"[{kind or 'unknown'} content]"


def mcp_content_text(blocks: Iterable[Any]) -> str:
    """An MCP tool result's content blocks as one text."""
    return "\n".join(block_text(block) for block in blocks)


def _part_text(part: Any) -> str | None:
    """A tool-output part as text: its text, an image or file described; None if not a part."""
    kind = _get(part, "type")
    if kind in _TEXT_PARTS:
        return str(_get(part, "text") or "")
    if kind in ("image", "input_image"):
        url = str(_get(part, "image_url") or "")
        if url.startswith("data:"):
            mime, _, data = url[5:].partition(";base64,")
            return _describe("image", mime, data)
        return f"[image: {url or _get(part, 'file_id') or 'unknown'}]"
    if kind in ("file", "input_file"):
        return f"[file: {_get(part, 'filename', 'file_id', 'file_url') or 'unknown'}]"
    return None


def tool_output_text(output: Any) -> str:
    """A tool's result as the text of its ``function_call_output``."""
    if isinstance(output, str):
        return output
    if isinstance(output, Sequence) and not isinstance(output, bytes | bytearray) and output:
        parts = [_part_text(p) for p in output]
        if all(p is not None for p in parts):
            return "\n".join(p for p in parts if p is not None)
    elif (text := _part_text(output)) is not None:
        return text
    if hasattr(output, "model_dump"):
        output = output.model_dump(exclude_none=True)
    return json.dumps(output, default=str, ensure_ascii=False)


def parts_as_text(output: Any) -> Any:
    """``output`` as its text if it is one of the SDK's tool output shapes (a text, image or file
    part, or a list of them); any other value as it is."""
    if isinstance(output, list) and output and all(_part_text(p) is not None for p in output):
        return tool_output_text(output)
    if not isinstance(output, str | list) and _part_text(output) is not None:
        return tool_output_text(output)
    return output


def _text_parts(output: Any) -> str | None:
    if not isinstance(output, list) or not output:
        return None
    if not all(_get(p, "type") in _TEXT_PARTS for p in output):
        return None
    return "\n".join(str(_get(p, "text") or "") for p in output)


def outputs_as_text(items: Sequence[Any]) -> list[Any]:
    """The model input ``items`` with each tool output of text parts alone made that text."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, Mapping) and item.get("type") == "function_call_output":
            text = _text_parts(item.get("output"))
            if text is not None:
                item = {**item, "output": text}
        out.append(item)
    return out


def text_outputs_filter(data: CallModelData[Any]) -> ModelInputData:
    """A ``RunConfig.call_model_input_filter``: :func:`outputs_as_text` on each model call's input."""
    return ModelInputData(
        input=outputs_as_text(data.model_data.input), instructions=data.model_data.instructions
    )
