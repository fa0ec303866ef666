"""MLflow spans as OTLP protobuf, byte for byte what ``Span.to_otel_proto`` makes, in less CPU.

MLflow's conversion builds each nested attribute value (a model call's messages, its tools) as a
detached message and copies it into its parent, so every level is copied once per level above
it, and it re-encodes every string to replace what UTF-8 cannot carry. Here each value is built
in place (``SetInParent`` marks an empty list or map as set, as ``CopyFrom`` does) and an ASCII
string, which needs no replacing, is taken as it is. ``tests/unit/test_trace_otlp.py`` compares
the serialized bytes with MLflow's for every kind of value an attribute can hold. A span with
links (rare; their ids need MLflow's trace id parsing) is left to MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlflow.entities import Span
from mlflow.tracing.utils.otlp import resource_to_otel_proto
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OTelProtoSpan


def _text(value: str) -> str:
    """What protobuf can carry of ``value``: a lone surrogate becomes "?", as in MLflow."""
    return value if value.isascii() else value.encode("utf-8", errors="replace").decode("utf-8")


def fill_any_value(target: AnyValue, value: Any) -> None:
    """Set ``value`` on ``target`` as MLflow's ``_set_otel_proto_anyvalue`` does."""
    if value is None:
        return
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, str):
        target.string_value = _text(value)
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, list | tuple):
        array = target.array_value
        array.SetInParent()
        add = array.values.add
        for item in value:
            fill_any_value(add(), item)
    elif isinstance(value, dict):
        entries = target.kvlist_value
        entries.SetInParent()
        add = entries.values.add
        for key, item in value.items():
            entry = add()
            entry.key = _text(str(key))
            fill_any_value(entry.value, item)
    else:
        target.string_value = _text(str(value))


def span_to_otel_proto(span: Span) -> OTelProtoSpan:
    """``span`` as OTLP protobuf: the same message as ``span.to_otel_proto()``."""
    proto = OTelProtoSpan()
    _fill_span(proto, span)
    return proto


def _fill_span(proto: OTelProtoSpan, span: Span) -> None:
    if span.links:
        proto.CopyFrom(span.to_otel_proto())
        return
    proto.trace_id = bytes.fromhex(span._trace_id)
    proto.span_id = bytes.fromhex(span.span_id)
    proto.name = span.name
    proto.start_time_unix_nano = span.start_time_ns
    if span.end_time_ns:
        proto.end_time_unix_nano = span.end_time_ns
    if span.parent_id:
        proto.parent_span_id = bytes.fromhex(span.parent_id)
    proto.status.CopyFrom(span.status.to_otel_proto_status())
    add = proto.attributes.add
    for key, value in span.attributes.items():
        attribute = add()
        attribute.key = key
        fill_any_value(attribute.value, value)
    proto.events.extend(event.to_otel_proto() for event in span.events)


def export_request(spans: Sequence[Span]) -> ExportTraceServiceRequest:
    """One OTLP request holding ``spans`` (at least one) under the first span's resource, as
    MLflow's ``RestStore.log_spans`` sends them."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.CopyFrom(resource_to_otel_proto(getattr(spans[0]._span, "resource", None)))
    add = resource_spans.scope_spans.add().spans.add
    for span in spans:
        _fill_span(add(), span)
    return request
