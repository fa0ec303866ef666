"""The Prometheus metrics the server exports, read from prometheus-client's registry. Pure but
for the registry it is handed.

prometheus-client has no public listing of a registry's metrics before they have samples (a
labelled metric has none until first used), so the metric objects' own attributes are read:
``_name``, ``_type``, ``_labelnames``, ``_documentation``.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from docs_ref.md import cell, code, table

PREFIX = "agentship_"


@dataclass(frozen=True)
class Metric:
    name: str
    """As scraped: a counter's name ends in ``_total``."""
    kind: str
    labels: tuple[str, ...]
    help: str


def metrics(registry: CollectorRegistry) -> list[Metric]:
    """The project's metrics (named ``agentship_…``) in ``registry``, by name."""
    found: list[Metric] = []
    for collector in list(registry._collector_to_names):
        if not isinstance(collector, MetricWrapperBase) or not collector._name.startswith(PREFIX):
            continue
        kind = collector._type or "untyped"
        name = f"{collector._name}_total" if kind == "counter" else collector._name
        found.append(Metric(name, kind, tuple(collector._labelnames), collector._documentation))
    return sorted(found, key=lambda m: m.name)


def render(found: list[Metric]) -> str:
    rows = [[code(m.name), m.kind, ", ".join(code(label) for label in m.labels), cell(m.help)] for m in found]
    return table(["Metric", "Type", "Labels", "Meaning"], rows)
