"""Traces to an OpenTelemetry backend (Langfuse, Jaeger, Phoenix, a collector), through MLflow's own
OTLP export: nothing here exports anything, it only checks and completes MLflow's settings.

MLflow exports each trace over OTLP when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_ENDPOINT``, plus ``/v1/traces``) is set: *instead of* the tracking store, or
*beside* it with ``MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT=true``. Headers (a backend's credentials)
come from ``OTEL_EXPORTER_OTLP_HEADERS`` / ``OTEL_EXPORTER_OTLP_TRACES_HEADERS``, read by the
OpenTelemetry exporter itself; they are never logged here (only their names).

:func:`prepare` completes what MLflow would otherwise get wrong: it defaults the protocol to
``http/protobuf`` (MLflow's default, gRPC, needs an exporter that the ``otlp`` extra does not
install; with ``OTEL_EXPORTER_OTLP_ENDPOINT`` MLflow also exports span metrics, over the same
protocol), and it fails at startup, not silently per span, when an exporter is missing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, MutableMapping
from urllib.parse import urlsplit, urlunsplit

from agentship.errors import ConfigError

TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
METRICS_ENDPOINT = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
METRICS_PROTOCOL = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
DUAL_EXPORT = "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT"
HEADERS = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
_EXPORTERS = {
    "http/protobuf": ("opentelemetry.exporter.otlp.proto.http", "pip install 'agentship-mlflow[otlp]'"),
    "grpc": ("opentelemetry.exporter.otlp.proto.grpc", "pip install opentelemetry-exporter-otlp-proto-grpc"),
}


def endpoint(environ: Mapping[str, str]) -> str | None:
    """The OTLP traces URL MLflow will export to, as MLflow derives it; None when off."""
    if environ.get("MLFLOW_ENABLE_OTLP_EXPORTER", "true").strip().lower() in ("false", "0", "no"):
        return None
    if url := environ.get(TRACES_ENDPOINT):
        return url
    if base := environ.get(ENDPOINT):
        return base.rstrip("/") + "/v1/traces"
    return None


def redacted(url: str) -> str:
    """``url`` without credentials or query (for logs). Pure."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def describe(environ: Mapping[str, str]) -> str:
    """Where traces go, for the startup log: never a header value or a credential. Pure."""
    url = endpoint(environ)
    if url is None:
        return "the MLflow tracking store"
    headers = [name for name in HEADERS if environ.get(name)]
    sent = f", headers from {' and '.join(headers)}" if headers else ""
    protocol = environ.get(TRACES_PROTOCOL) or environ.get(PROTOCOL) or "grpc"
    also = (
        " and the MLflow tracking store" if _truthy(environ.get(DUAL_EXPORT)) else " (not the MLflow store)"
    )
    return f"OTLP {protocol} to {redacted(url)}{sent}{also}"


def replaces_store(environ: Mapping[str, str]) -> bool:
    """Whether traces go over OTLP *instead of* the MLflow store (no dual export). Pure."""
    return endpoint(environ) is not None and not _truthy(environ.get(DUAL_EXPORT))


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def prepare(environ: MutableMapping[str, str]) -> str:
    """Complete the OTLP settings in ``environ`` (the server's, before MLflow reads them); say where
    traces go. :class:`ConfigError` if OTLP is on and its exporter is not installed."""
    if endpoint(environ) is None:
        return describe(environ)
    environ.setdefault(PROTOCOL, "http/protobuf")  # for traces and, if exported, span metrics
    signals = [("traces", environ.get(TRACES_PROTOCOL) or environ[PROTOCOL])]
    if environ.get(METRICS_ENDPOINT) or environ.get(ENDPOINT):
        signals.append(("span metrics", environ.get(METRICS_PROTOCOL) or environ[PROTOCOL]))
    for signal, protocol in signals:
        if protocol not in _EXPORTERS:
            raise ConfigError(
                f"unsupported OTLP protocol {protocol!r} for {signal}: use http/protobuf or grpc"
            )
        module, install = _EXPORTERS[protocol]
        if not _installed(module):
            raise ConfigError(
                f"{signal} go over OTLP ({protocol}) but its exporter is not installed: {install}"
            )
    return describe(environ)
