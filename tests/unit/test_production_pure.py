"""The pure parts of the production path: the version rule, key entries, OTLP settings, metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.routing import Route

from agentship.compat import check_model_version
from agentship.errors import ConfigError
from agentship.server.http.auth import ApiKeys, KeysError, parse_entries
from agentship.server.observability import otlp as _otlp
from agentship.server.observability.metrics import route_of


@pytest.mark.parametrize(
    ("recorded", "installed", "level"),
    [
        ("0.1.0", "0.1.0", "ok"),
        ("0.1.0", "0.1.3", "warn"),
        ("0.1.0", "0.2.0", "fail"),  # before 1.0 a minor version may break
        ("1.2.0", "1.4.1", "warn"),
        ("1.9.0", "2.0.0", "fail"),
        ("2.0.0", "1.9.0", "fail"),
        (None, "0.1.0", "warn"),
        ("not a version", "0.1.0", "warn"),
    ],
)
def test_the_version_rule(recorded: str | None, installed: str, level: str) -> None:
    verdict = check_model_version(recorded, installed)
    assert verdict.level == level
    if level == "fail":
        assert recorded in verdict.message and installed in verdict.message


def test_key_entries_named_and_bare() -> None:
    keys = parse_entries("alice:k1, bob:k2\n# a comment\n  k3  # trailing\n", "test")
    assert [k.identity for k in keys[:2]] == ["alice", "bob"]
    assert keys[2].identity.startswith("key-") and len(keys[2].identity) == 16
    assert [k.secret for k in keys] == [b"k1", b"k2", b"k3"]
    assert parse_entries("k3", "again")[0].identity == keys[2].identity  # stable across replicas
    with pytest.raises(KeysError, match="NAME:KEY"):
        parse_entries("alice:", "test")


def test_keys_from_the_environment_and_a_file(tmp_path: Path) -> None:
    assert ApiKeys.from_environ({}) is None
    file = tmp_path / "keys"
    file.write_text("carol:k3\n")
    keys = ApiKeys.from_environ({"AGENTSHIP_API_KEYS": "alice:k1", "AGENTSHIP_API_KEYS_FILE": str(file)})
    assert keys is not None
    assert (keys.identify("k1"), keys.identify("k3"), keys.identify("k4"), keys.identify("")) == (
        "alice",
        "carol",
        None,
        None,
    )
    assert "k1" not in keys.describe() and "k3" not in keys.describe()
    with pytest.raises(KeysError, match="cannot read"):
        ApiKeys.from_environ({"AGENTSHIP_API_KEYS_FILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("# nothing yet\n")
    with pytest.raises(KeysError, match="no key"):
        ApiKeys.from_environ({"AGENTSHIP_API_KEYS_FILE": str(tmp_path / "empty")})


def test_otlp_settings_are_completed_and_described_without_secrets() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://pk:sk@cloud.langfuse.com/api/public/otel/v1/traces?x=1",
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic c2VjcmV0",
        "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT": "true",
    }
    said = _otlp.prepare(environ)
    assert environ["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert "cloud.langfuse.com/api/public/otel/v1/traces" in said and "MLflow tracking store" in said
    assert "OTEL_EXPORTER_OTLP_HEADERS" in said
    for secret in ("c2VjcmV0", "sk", "x=1"):
        assert secret not in said.replace("tracking store", "")
    assert (
        _otlp.endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318/"})
        == "http://jaeger:4318/v1/traces"
    )
    assert _otlp.describe({}) == "the MLflow tracking store"
    grpc = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    with pytest.raises(ConfigError, match="opentelemetry-exporter-otlp-proto-grpc"):
        _otlp.prepare(grpc)


def test_metric_routes_are_templates() -> None:
    async def endpoint(request: object) -> None: ...

    routes = [Route("/invocations", endpoint, methods=["POST"]), Route("/responses/{response_id}", endpoint)]
    scope = {"type": "http", "path": "/responses/resp_123", "method": "GET"}
    assert route_of(routes, scope) == "/responses/{response_id}"
    assert route_of(routes, {**scope, "path": "/invocations"}) == "/invocations"  # a GET: still the route
    assert route_of(routes, {**scope, "path": "/elsewhere"}) == "other"
