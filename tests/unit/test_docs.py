"""The docs site's generated reference pages (scripts/gen_ref.py, scripts/docs_ref/): the
environment page cannot drift from the code, and the renderers say what the code says.
(scripts/docs.sh builds the site itself, with --strict, in CI.)"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import Literal

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, Field

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from docs_ref import cli_ref, config_ref, env_ref, metrics_ref, openapi_ref, pages  # noqa: E402
from docs_ref.env_catalog import CATALOG, GROUPS, EnvVar  # noqa: E402
from docs_ref.md import anchor, from_rst  # noqa: E402


# -- the environment page -----------------------------------------------------------------------
def test_every_variable_the_code_reads_is_on_the_environment_page() -> None:
    found = pages.env_found(REPO)
    drift = env_ref.check(pages.env_entries(), found)
    assert not drift.undocumented, f"describe them in scripts/docs_ref/env_catalog.py: {drift.undocumented}"
    assert not drift.stale, f"no longer read by the code; remove them from the catalog: {drift.stale}"
    page = pages.env_page(REPO)
    missing = [name for name in found if f"`{name}`" not in page]
    assert not missing
    # the variables a reader looks for first are found by the scan, not only listed by hand
    for name in ("AGENTSHIP_STATE_URL", "SERVING_MAX_CONCURRENCY", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        assert name in found


def test_the_catalog_is_well_formed() -> None:
    names = [e.name for e in CATALOG]
    assert len(names) == len(set(names))
    assert {e.group for e in CATALOG} <= set(GROUPS)
    assert all(e.meaning and e.default for e in CATALOG)
    assert not [e.name for e in CATALOG if e.name.startswith("SERVING_")], "they come from ServerSettings"


def test_serving_variables_come_from_the_server_settings() -> None:
    entries = {e.name: e for e in pages.env_entries() if e.group == "serving"}
    assert entries["SERVING_MAX_CONCURRENCY"].default == "`256`"
    assert "Set by `--max-concurrency`." in entries["SERVING_MAX_CONCURRENCY"].meaning
    assert "Set by `--timeout`." in entries["SERVING_REQUEST_TIMEOUT_S"].meaning
    assert entries["SERVING_MODEL_URI"].default == "required"
    assert "Set by" not in entries["SERVING_RETRY_AFTER_S"].meaning  # no flag sets it


def test_drift_is_reported_both_ways() -> None:
    entries = [EnvVar("AGENTSHIP_A", "state", "1", "a"), EnvVar("OTEL_B", "otlp", "x", "b", external=True)]
    drift = env_ref.check(
        [*entries, EnvVar("AGENTSHIP_GONE", "state", "1", "gone")],
        {"AGENTSHIP_A": {"x.py"}, "AGENTSHIP_NEW": {"y.py"}},
    )
    assert drift.undocumented == ["AGENTSHIP_NEW"] and drift.stale == ["AGENTSHIP_GONE"]
    with pytest.raises(ValueError, match="AGENTSHIP_NEW"):
        env_ref.render(entries, {"AGENTSHIP_A": {"x.py"}, "AGENTSHIP_NEW": {"y.py"}})


def test_names_are_whole_string_constants() -> None:
    source = '''
"""Reads AGENTSHIP_IN_A_DOCSTRING, which is prose."""
import os
URL = "AGENTSHIP_STATE_URL"
os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
PREFIX = "SERVING_"
message = f"set {URL} or AGENTSHIP_NOT_A_NAME here"
lower = "agentship_metric_total"
'''
    assert env_ref.names_in_python(source) == {"AGENTSHIP_STATE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"}


def test_scan_reads_the_package_the_entry_and_the_scripts(tmp_path: Path) -> None:
    (tmp_path / "agentship" / "testing").mkdir(parents=True)
    (tmp_path / "serving").mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "agentship" / "a.py").write_text('X = "MLFLOW_TRACKING_URI"\n')
    (tmp_path / "agentship" / "testing" / "t.py").write_text('A, B = "AGENTSHIP_T_DIR", "RAY_ADDRESS"\n')
    (tmp_path / "serving" / "s.py").write_text('Y = "SERVING_MODEL_URI"\n')
    (tmp_path / "scripts" / "x.sh").write_text('CACHE="${AGENTSHIP_CACHE:-$HOME/.cache}"\n')
    found = env_ref.scan(tmp_path, ["max_concurrency"])
    assert found == {
        "MLFLOW_TRACKING_URI": {"agentship/a.py"},
        "AGENTSHIP_T_DIR": {"agentship/testing/t.py"},
        "SERVING_MODEL_URI": {"serving/s.py"},
        "AGENTSHIP_CACHE": {"scripts/x.sh"},
        "SERVING_MAX_CONCURRENCY": {env_ref.SETTINGS_FILE},
    }


def test_flags_are_read_from_the_cli_source() -> None:
    source = """
def main(args):
    os.environ["SERVING_MODEL_URI"] = args.model_uri
    for name, value in (
        ("SERVING_A2A", "true" if args.a2a or args.a2a_url else None),
        ("SERVING_DRAIN_TIMEOUT_S", drain),
        ("AGENTSHIP_STATE_URL", args.state_url),
    ):
        pass
"""
    options = {"model_uri": "--model-uri", "a2a": "--a2a", "state_url": "--state-url"}
    assert env_ref.flags_for(source, options) == {
        "SERVING_MODEL_URI": "--model-uri",
        "SERVING_A2A": "--a2a",
        "AGENTSHIP_STATE_URL": "--state-url",
    }


@dataclasses.dataclass
class _Settings:
    uri: str
    limit: int = 3
    """At most this many."""
    ratio: float = 0.5


def test_serving_vars_take_docstrings_notes_and_refuse_stale_notes() -> None:
    assert env_ref.attribute_docs(_Settings) == {"limit": "At most this many."}
    out = env_ref.serving_vars(_Settings, {"SERVING_LIMIT": "--limit"}, {"uri": "Where."}, {"ratio": "Half."})
    assert [(e.name, e.default, e.meaning) for e in out] == [
        ("SERVING_URI", "required", "Where."),
        ("SERVING_LIMIT", "`3`", "At most this many. Set by `--limit`."),
        ("SERVING_RATIO", "`0.5`", "Half."),
    ]
    with pytest.raises(ValueError, match="limit"):
        env_ref.serving_vars(_Settings, {}, {"limit": "a note for a documented field"}, {})
    with pytest.raises(ValueError, match="gone"):
        env_ref.serving_vars(_Settings, {}, {}, {"gone": "a note for no field"})


# -- the config page -----------------------------------------------------------------------------
class _Inner(BaseModel):
    x: int = 1


class _Model(BaseModel):
    name: str = Field(min_length=1, description="The ``name``.")
    mode: Literal["a", "b"] = "a"
    inner: _Inner = Field(default_factory=_Inner)
    items: list[str] | None = None
    count: int = Field(2, ge=0, le=5)


def test_config_tables_read_types_defaults_and_bounds_from_the_model() -> None:
    section = config_ref.Section(_Model, "Model", "model", notes={"mode": "Which mode."})
    text = config_ref.render(section, {_Inner: "#inner"})
    rows = {line.split(" | ")[0].strip("| `"): line for line in text.splitlines() if line.startswith("| `")}
    assert rows["name"] == "| `name` | `str` | required | length ≥ 1 | The `name`. |"
    assert rows["mode"] == "| `mode` | `a` \\| `b` | `a` |  | Which mode. |"
    assert rows["inner"] == "| `inner` | [_Inner](#inner) | see [_Inner](#inner) |  |  |"
    assert rows["items"] == "| `items` | list of `str` or null | none |  |  |"
    assert rows["count"] == "| `count` | `int` | `2` | ≥ 0, ≤ 5 |  |"
    assert text.startswith("### Model { #model }")


def test_stale_config_notes_fail() -> None:
    with pytest.raises(config_ref.StaleNote, match="described in the code"):
        config_ref.check_notes(config_ref.Section(_Model, "M", "m", notes={"name": "a second meaning"}))
    with pytest.raises(config_ref.StaleNote, match="no field"):
        config_ref.check_notes(config_ref.Section(_Model, "M", "m", notes={"gone": "x"}))


# -- the CLI page ----------------------------------------------------------------------------------
def test_cli_tables_come_from_the_parser() -> None:
    parser = argparse.ArgumentParser(prog="tool", description="Does ``things``.")
    parser.add_argument("where", choices=["here", "there"])
    parser.add_argument("-p", "--port", type=int, default=8000, help="the port")
    parser.add_argument("--tag", action="append", default=[], help="a tag")
    parser.add_argument("--name", required=True)
    text = cli_ref.render(cli_ref.Command("tool", parser))
    assert "Does `things`." in text
    assert "usage: tool [-h] [-p PORT] [--tag TAG] --name NAME {here,there}" in text
    assert "| `where` | required | One of: `here`, `there`. |" in text
    assert "| `-p, --port PORT` | `8000` | the port |" in text
    assert "| `--tag TAG` |  | a tag (repeatable) |" in text
    assert "| `--name NAME` | required |  |" in text


# -- metrics, OpenAPI, Markdown --------------------------------------------------------------------
def test_metrics_are_read_from_the_registry() -> None:
    registry = CollectorRegistry()
    Counter("agentship_things", "Things done.", ["kind"], registry=registry)
    Gauge("agentship_depth", "How deep.", registry=registry)
    Counter("other_things", "Not ours.", registry=registry)
    found = metrics_ref.metrics(registry)
    assert found == [
        metrics_ref.Metric("agentship_depth", "gauge", (), "How deep."),
        metrics_ref.Metric("agentship_things_total", "counter", ("kind",), "Things done."),
    ]


def test_the_servers_metrics_are_on_the_page() -> None:
    page = pages.metrics_page()
    for name in ("agentship_requests_total", "agentship_state_trim_failures_total", "agentship_tokens_total"):
        assert f"`{name}`" in page


def test_http_api_page_lists_operations_or_says_it_is_coming() -> None:
    assert "not here yet" in openapi_ref.render(None, "openapi.json")
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "agentship", "version": "0.1.0"},
        "paths": {"/health": {"get": {"summary": "Liveness", "responses": {"200": {}}}}},
    }
    text = openapi_ref.render(spec, "openapi.json")
    assert "[`openapi.json`](openapi.json)" in text
    assert "| GET | `/health` | Liveness | `200` |" in text


def test_anchor_is_the_toc_slug() -> None:
    assert (
        anchor("Trace export: batched, bounded, off the hot path")
        == "trace-export-batched-bounded-off-the-hot-path"
    )
    assert anchor("`/responses`, as OpenAI's clients expect it") == "responses-as-openais-clients-expect-it"


def test_rst_markup_becomes_markdown() -> None:
    assert (
        from_rst("``x`` and :mod:`agentship.client` and :class:`~.run.Run`")
        == "`x` and `agentship.client` and `.run.Run`"
    )


def test_every_generated_page_is_in_the_nav() -> None:
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    generated = re.findall(r'"([\w-]+\.md)": \w+_page\(', (REPO / "scripts/docs_ref/pages.py").read_text())
    assert len(generated) == 5
    for name in generated:
        assert f"reference/{name}" in nav
