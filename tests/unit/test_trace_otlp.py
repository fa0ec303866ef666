"""What the trace export sends a tracking server: spans as OTLP protobuf, the very bytes MLflow's
``Span.to_otel_proto`` and ``RestStore.log_spans`` make, for every kind of attribute value; and
the ``start_trace`` body, the JSON ``RestStore.start_trace`` sends."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from mlflow.entities import Span, Trace, TraceData, TraceInfo, TraceLocation, TraceState
from mlflow.protos.service_pb2 import StartTraceV3
from mlflow.tracing.utils.otlp import _set_otel_proto_anyvalue, resource_to_otel_proto
from mlflow.utils.proto_json_utils import message_to_json
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OTelProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from agentship.trace_export.otlp import export_request, fill_any_value, span_to_otel_proto
from agentship.trace_export.sinks import RestSink

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")

VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -7,
    2**62,
    1.5,
    -0.0,
    math.inf,
    "",
    "plain ascii",
    "café, 東京, 🙂",
    "lone \ud800 surrogate",
    [],
    {},
    [[], {}, [[]]],
    {"role": "user", "content": [{"type": "input_text", "text": "héllo"}], "n": None},
    {"messages": [{"role": "assistant", "tool_calls": [{"id": "c1", "arguments": '{"city": "Paris"}'}]}] * 3},
    {"\ud800key": "value", "": [1, 2.5, True, None, "x"]},
]
"""What a span attribute can hold once MLflow has read it back from its JSON."""


@pytest.mark.parametrize("value", [*VALUES, b"\x00bytes", ("a", 1), {1: "int key"}, KeyError("not JSON")])
def test_a_value_is_set_as_mlflow_sets_it(value: Any) -> None:
    ours, theirs = AnyValue(), AnyValue()
    fill_any_value(ours, value)
    _set_otel_proto_anyvalue(theirs, value)
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)
    assert ours == theirs


def _proto_span(
    span_id: str, parent: str | None, attributes: dict[str, Any], link: bool = False
) -> OTelProtoSpan:
    proto = OTelProtoSpan(
        trace_id=TRACE_ID,
        span_id=bytes.fromhex(span_id),
        name="generation",
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_250_000_000,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
    )
    if parent:
        proto.parent_span_id = bytes.fromhex(parent)
    for key, value in attributes.items():
        attribute = proto.attributes.add()
        attribute.key = key
        _set_otel_proto_anyvalue(attribute.value, value)
    event = proto.events.add(time_unix_nano=1_700_000_000_100_000_000, name="exception")
    event.attributes.append(KeyValue(key="exception.message", value=AnyValue(string_value="bad")))
    if link:
        proto.links.add(trace_id=TRACE_ID, span_id=bytes.fromhex("00000000000000aa"))
    return proto


def _spans(link: bool = False) -> list[Span]:
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="agent"))])
    root = _proto_span(
        "00000000000000a1", None, {"mlflow.spanType": "AGENT", "mlflow.spanInputs": VALUES[-3]}
    )
    child = _proto_span(
        "00000000000000a2",
        "00000000000000a1",
        {f"attribute.{i}": value for i, value in enumerate(VALUES)},
        link=link,
    )
    return [Span.from_otel_proto(proto, resource=resource) for proto in (root, child)]


def test_a_span_is_the_same_message_as_mlflows() -> None:
    for span in _spans():
        assert not span.links
        ours, theirs = span_to_otel_proto(span), span.to_otel_proto()
        assert ours.SerializeToString() == theirs.SerializeToString()
        assert ours == theirs
    stored = {key: json.loads(str(value)) for key, value in (_spans()[1]._span.attributes or {}).items()}
    assert set(stored) == {f"attribute.{i}" for i in range(len(VALUES))} | {"mlflow.traceRequestId"}
    assert stored["attribute.11"] == "café, 東京, 🙂"
    assert stored["attribute.12"] == "lone ? surrogate"


def test_a_span_with_links_is_left_to_mlflow() -> None:
    span = _spans(link=True)[1]
    assert len(span.links) == 1
    assert span_to_otel_proto(span).SerializeToString() == span.to_otel_proto().SerializeToString()


def test_a_batch_is_the_request_mlflows_rest_store_sends() -> None:
    spans = _spans() + _spans(link=True)[1:]
    theirs = ExportTraceServiceRequest()
    resource_spans = theirs.resource_spans.add()
    resource_spans.resource.CopyFrom(resource_to_otel_proto(getattr(spans[0]._span, "resource", None)))
    resource_spans.scope_spans.add().spans.extend(span.to_otel_proto() for span in spans)
    ours = export_request(spans)
    assert ours.SerializeToString() == theirs.SerializeToString()
    assert ours.resource_spans[0].resource.attributes[0].value.string_value == "agent"
    assert len(ours.resource_spans[0].scope_spans[0].spans) == 3


def test_the_start_trace_body_is_the_json_mlflows_rest_store_sends() -> None:
    info = TraceInfo(
        trace_id="tr-0af7651916cd43dd8448eb211c80319c",
        trace_location=TraceLocation.from_experiment_id("7"),
        request_time=1_700_000_000_123,
        execution_duration=250,
        state=TraceState.ERROR,
        request_preview='{"input": "héllo"}',
        response_preview="",
        client_request_id="resp-1",
        trace_metadata={"mlflow.trace.user": "ada", "mlflow.trace.sizeStats": '{"total_size_bytes": 10}'},
        tags={"route": "/responses", "mlflow.traceName": "predict"},
    )
    theirs = json.loads(
        message_to_json(StartTraceV3(trace=Trace(info=info, data=TraceData(spans=[])).to_proto()))
    )
    ours = RestSink._start_body(Trace(info=info, data=TraceData(spans=_spans())))
    assert json.loads(ours) == theirs
    assert theirs["trace"]["trace_info"]["trace_metadata"]["mlflow.trace.user"] == "ada"
    assert "spans" not in theirs["trace"]
