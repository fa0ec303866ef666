"""Span payloads, written once when a span ends, and bounded.

MLflow keeps a span's inputs, outputs and attributes as JSON text on the OpenTelemetry span
(``mlflow.spanInputs``, ``mlflow.spanOutputs``, ...). :func:`write_payload` serialises a value
once, as MLflow would, and writes that text there. A payload longer than the bound is cut:
first each long string in it (the conversation keeps its shape, the long tool output or image
data is cut), then, if that is not enough, the whole JSON text, kept as a string. Every cut
ends with the marker ``…[cut N of M characters]``.

The bound is ``AGENTSHIP_TRACE_MAX_PAYLOAD_CHARS`` characters per payload (65536 by default,
``0`` for none), read when tracing is installed (:meth:`PayloadLimit.from_environ`).

:func:`write_otel_attributes` writes OpenTelemetry attributes as they are (strings, numbers),
for the GenAI semantic conventions, which OTLP readers take as typed values, not JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlflow.entities import LiveSpan
from mlflow.environment_variables import MLFLOW_TRACE_EXTRACT_ATTACHMENTS
from mlflow.tracing.constant import SpanAttributeKey
from mlflow.tracing.utils import TraceJSONEncoder

from agentship.errors import ConfigError

MAX_PAYLOAD_ENV = "AGENTSHIP_TRACE_MAX_PAYLOAD_CHARS"
DEFAULT_MAX_PAYLOAD_CHARS = 65_536
MIN_PAYLOAD_CHARS = 1_024
CUT_MARKER = "…[cut "
"""How every cut ends: ``…[cut N of M characters]``."""

type OtelValue = str | bool | int | float


@dataclass(frozen=True)
class PayloadLimit:
    """At most ``max_chars`` characters of JSON per payload (0: no bound)."""

    max_chars: int = DEFAULT_MAX_PAYLOAD_CHARS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> PayloadLimit:
        raw = (environ.get(MAX_PAYLOAD_ENV) or "").strip()
        if not raw:
            return cls()
        try:
            value = int(raw)
        except ValueError as exc:
            raise ConfigError(f"{MAX_PAYLOAD_ENV} must be a whole number of characters, not {raw!r}") from exc
        if value != 0 and value < MIN_PAYLOAD_CHARS:
            raise ConfigError(
                f"{MAX_PAYLOAD_ENV} must be 0 (no bound) or at least {MIN_PAYLOAD_CHARS}, not {value}"
            )
        return cls(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, cls=TraceJSONEncoder, ensure_ascii=False)


def _marker(kept: int, total: int) -> str:
    return f"{CUT_MARKER}{total - kept} of {total} characters]"


def _cut_strings(value: Any, longest: int) -> Any:
    """``value`` (plain JSON data) with every string longer than ``longest`` cut. Pure."""
    if isinstance(value, str):
        return value if len(value) <= longest else value[:longest] + _marker(longest, len(value))
    if isinstance(value, list):
        return [_cut_strings(v, longest) for v in value]
    if isinstance(value, dict):
        return {k: _cut_strings(v, longest) for k, v in value.items()}
    return value


def _cut_text(text: str, max_chars: int) -> str:
    """The JSON text ``text`` as a JSON string of at most ``max_chars`` characters, marked."""
    keep = max(max_chars - 64, 0)
    while True:
        out = _dumps(text[:keep] + _marker(keep, len(text)))
        if len(out) <= max_chars or keep == 0:
            return out
        keep = max(keep - (len(out) - max_chars) - 8, 0)  # escapes made it longer: keep less


def bounded_json(value: Any, limit: PayloadLimit) -> str:
    """``value`` as MLflow's JSON text, cut to the limit with a marker where it was cut."""
    text = _dumps(value)
    if not limit.max_chars or len(text) <= limit.max_chars:
        return text
    return _bound_text(text, limit)


def _bound_text(text: str, limit: PayloadLimit) -> str:
    try:
        plain = json.loads(text)
    except ValueError:
        return _cut_text(text, limit.max_chars)
    longest = max(limit.max_chars // 8, 256)
    shrunk = _dumps(_cut_strings(plain, longest))
    if len(shrunk) <= limit.max_chars:
        return shrunk
    return _cut_text(text, limit.max_chars)


def write_payload(span: LiveSpan, key: str, value: Any, limit: PayloadLimit) -> None:
    """Set the MLflow attribute ``key`` (inputs, outputs, or another) to ``value``, bounded.

    The value is serialised once. Inputs and outputs holding base64 data go through MLflow's
    own setter first, so that it can keep images as trace attachments, as it does for autolog.
    """
    text = bounded_json(value, limit)
    if (
        key in (SpanAttributeKey.INPUTS, SpanAttributeKey.OUTPUTS)
        and ";base64," in text
        and MLFLOW_TRACE_EXTRACT_ATTACHMENTS.get()
    ):
        (span.set_inputs if key == SpanAttributeKey.INPUTS else span.set_outputs)(value)
        stored = (_otel(span).attributes or {}).get(key)
        if isinstance(stored, str) and (not limit.max_chars or len(stored) <= limit.max_chars):
            return
        text = _bound_text(stored, limit) if isinstance(stored, str) else text
    _otel(span).set_attribute(key, text)


def _otel(span: LiveSpan) -> Any:
    """The OpenTelemetry span under MLflow's (its ``_span``, as MLflow's own integrations use it)."""
    return span._span


def write_otel_attributes(span: LiveSpan, attributes: Mapping[str, OtelValue | None]) -> None:
    """Set OpenTelemetry attributes as typed values (not JSON text); None values are skipped."""
    otel = _otel(span)
    for key, value in attributes.items():
        if value is not None:
            otel.set_attribute(key, value)


def rename(span: LiveSpan, name: str) -> None:
    """Give an open span the name it should have had (MLflow has no setter for it)."""
    if span.name != name:
        _otel(span).update_name(name)
