"""``/openapi.json`` against a live ``python -m serving``: schemathesis (its CLI, as a user runs it)
generates requests from the document for every operation, valid and invalid ones, and checks each
answer: never a 5xx, and always what the document says (status, media type, body schema). Bad
input is a 4xx by design, so answers to invalid requests are checked against the error shape the
document gives.

The budget is small enough for CI (:data:`EXAMPLES` per operation, no shrinking, a fixed seed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from agentship.server.http.openapi import document
from agentship.server.routes import table
from agentship.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

EXAMPLES = 30
"""Examples per operation in the fuzzing phase (valid and invalid: about 40 s in all)."""
PHASES = "examples,fuzzing"
"""CI's phases. ``AGENTSHIP_FUZZ_PHASES=examples,coverage,fuzzing`` adds the coverage phase
(every documented boundary and invalid value of every field: 28,000 cases, about 2.5 min)."""
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
EXPORTED = Path(__file__).resolve().parents[2] / "docs" / "reference" / "openapi.json"


@pytest.fixture(scope="module")
def fuzzed(
    start_serving: Callable[..., ServerProcess],
    scripted: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    """A server of its own (schemathesis leaves conversations and responses behind)."""
    state = tmp_path_factory.mktemp("openapi") / "state.db"
    server = start_serving(scripted.url + "/v1", "--state-url", f"sqlite:///{state}", name="serving-openapi")
    yield server
    server.stop()


def test_the_server_serves_the_document_of_its_routes(fuzzed: ServerProcess) -> None:
    served = httpx.get(f"{fuzzed.url}/openapi.json", timeout=60).json()
    assert served == json.loads(json.dumps(document(table(a2a=False))))
    assert served["openapi"] == "3.1.0"


def test_the_exported_document_is_the_servers_with_its_a2a_routes() -> None:
    assert json.loads(EXPORTED.read_text()) == json.loads(json.dumps(document(table(a2a=True))))


def test_every_operation_answers_as_documented(fuzzed: ServerProcess, tmp_path: Path) -> None:
    junit = tmp_path / "schemathesis.xml"
    st = Path(sys.executable).with_name("st")
    run = subprocess.run(
        [
            str(st),
            "run",
            f"{fuzzed.url}/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "1",
            "--no-shrink",
            "--phases",
            os.environ.get("AGENTSHIP_FUZZ_PHASES", PHASES),
            "--request-timeout",
            "60",
            "--workers",
            "1",
            "--report",
            "junit",
            "--report-junit-path",
            str(junit),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,  # its replay store (.schemathesis/) lands there, not in the checkout
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    cases = ET.parse(junit).getroot().iter("testcase")
    failed = sorted(case.get("name", "") for case in cases if case.find("failure") is not None)
    paths = document(table(a2a=False))["paths"]
    operations = {f"{method.upper()} {path}" for path, ops in paths.items() for method in ops}
    assert failed == [], run.stdout[-8000:]
    assert run.returncode == 0, run.stdout[-8000:]
    tested = {case.get("name", "") for case in ET.parse(junit).getroot().iter("testcase")}
    assert tested == operations - {"GET /openapi.json"}  # the document itself: the test above
