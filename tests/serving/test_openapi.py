"""``/openapi.json`` against a live ``python -m serving``: schemathesis generates requests from the
document for every operation, valid and invalid ones, and checks each answer: never a 5xx, and
always what the document says (status, media type, body schema). Bad input is a 4xx by design,
so answers to invalid requests are checked against the error shape the document gives.

The budget is small enough for CI (:data:`EXAMPLES` per operation, no shrinking).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agentship.server.http.openapi import document
from agentship.server.routes import table
from agentship.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

EXAMPLES = 12
"""Examples per operation and mode: ~50 operations, about a minute and a half on two cores."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXPORTED = Path(__file__).resolve().parents[2] / "docs" / "reference" / "openapi.json"


@pytest.fixture(scope="module")
def fuzzed(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server of its own (schemathesis leaves conversations and responses behind)."""
    state = tmp_path_factory.mktemp("openapi") / "state.db"
    server = start_serving(scripted.url + "/v1", "--state-url", f"sqlite:///{state}", name="serving-openapi")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(fuzzed: ServerProcess) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")


def test_the_server_serves_the_document_of_its_routes(fuzzed: ServerProcess) -> None:
    served = httpx.get(f"{fuzzed.url}/openapi.json", timeout=60).json()
    assert served == json.loads(json.dumps(document(table(a2a=False))))
    assert served["openapi"] == "3.1.0"


def test_the_exported_document_is_the_servers_with_its_a2a_routes() -> None:
    assert json.loads(EXPORTED.read_text()) == json.loads(json.dumps(document(table(a2a=True))))


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS, timeout=60)
