"""Where batches of traces are written: a SQL tracking store in this process, or a tracking server.

Both write what MLflow's own exporter writes, through MLflow's own calls and wire formats: the
trace info with ``start_trace`` (its metadata, tags, previews, client request id), then every span
of the batch in one ``log_spans`` call (one transaction, or one OTLP request). They differ from
MLflow's exporter in these ways, which is where its CPU per trace went:

- a batch of traces shares one ``log_spans`` call, where MLflow makes one per 5 spans;
- the trace info is written first, so the store's insert-or-merge path (taken when spans come
  first) is not;
- the experiment is looked up once a minute, not once per trace;
- over HTTP, spans are encoded in place (:mod:`agentship.trace_export.otlp`), and the trace
  info's body is sent as MLflow serializes it, not parsed and serialized again;
- over HTTP, MLflow's Databricks request-header probe does not search ``sys.path`` on every
  call for modules that are not installed (:func:`skip_absent_probes`).

Over HTTP a call is tried twice at most, at once, within ``timeout_s`` together (the second try
is for a pooled keep-alive connection the server closed meanwhile); the pipeline does the
retrying with backoff.
Writes are idempotent (the trace id is the key), so a batch retried after a partial write
comes out the same.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from mlflow.entities import Experiment, Trace
from mlflow.protos.service_pb2 import StartTraceV3
from mlflow.protos.service_pb2 import Trace as ProtoTrace
from mlflow.tracing.client import TracingClient
from mlflow.tracing.export.utils import try_link_prompts_to_trace
from mlflow.tracing.utils import add_size_stats_to_trace_metadata
from mlflow.tracing.utils.otlp import MLFLOW_EXPERIMENT_ID_HEADER, OTLP_TRACES_PATH
from mlflow.tracking.default_experiment import DEFAULT_EXPERIMENT_ID
from mlflow.utils.proto_json_utils import message_to_json
from mlflow.utils.rest_utils import _V3_TRACE_REST_API_PATH_PREFIX, http_request, verify_rest_response

from agentship.trace_export.otlp import export_request
from agentship.trace_export.pipeline import Finished

_logger = logging.getLogger(__name__)

EXPERIMENT_TTL_S = 60.0
_JSON_CONTENT = {"Content-Type": "application/json"}

DATABRICKS_PROBES = ("dbruntime", "IPython", "pyspark")
"""What MLflow's request-header providers import on every REST call to learn whether they run on
Databricks (``mlflow.utils.databricks_utils``); a module that is not installed is searched for
along ``sys.path`` each time: about 0.6 ms of CPU per call (``bench/header_probe.py``)."""


def skip_absent_probes(names: Sequence[str] = DATABRICKS_PROBES) -> list[str]:
    """Make importing each of ``names`` that is not installed fail at once, as it would after a
    search (``sys.modules[name] = None``: Python's own marker for a module known to be absent);
    return those names. Installed modules are left alone."""
    absent = [name for name in names if name not in sys.modules and importlib.util.find_spec(name) is None]
    for name in absent:
        sys.modules[name] = None  # type: ignore[assignment]
    return absent


def by_experiment(batch: Sequence[Finished]) -> dict[str, list[Finished]]:
    """The batch grouped by experiment id, in order. Pure."""
    groups: dict[str, list[Finished]] = defaultdict(list)
    for finished in batch:
        groups[finished.trace.info.experiment_id or DEFAULT_EXPERIMENT_ID].append(finished)
    return dict(groups)


class _Extras:
    """What MLflow's exporter does after a trace is written: prompt links and attachments."""

    def __init__(self, client: TracingClient) -> None:
        self._client = client

    def after(self, finished: Finished) -> None:
        trace = finished.trace
        try:
            attachments: dict[str, Any] = {}
            for span in trace.data.spans:
                attachments.update(getattr(span, "_attachments", None) or {})
            if attachments:
                self._client._upload_attachments(trace.info, attachments)
            if finished.prompts:
                try_link_prompts_to_trace(
                    client=self._client,
                    trace_id=trace.info.trace_id,
                    prompts=finished.prompts,
                    synchronous=False,
                )
        except Exception:
            _logger.warning(
                "trace %s: could not upload attachments or link prompts", trace.info.trace_id, exc_info=True
            )


class StoreSink:
    """An in-process SQL tracking store (SQLite, PostgreSQL, MySQL): MLflow's SqlAlchemyStore."""

    def __init__(self, client: TracingClient) -> None:
        shared = client.store
        # A shallow copy shares the engine and sessions; only its experiment lookup is cached.
        self._store = copy.copy(shared)
        self._experiments: dict[str, tuple[Experiment, float]] = {}
        self._lock = threading.Lock()
        self._lookup = shared.get_experiment
        self._store.get_experiment = self._experiment
        self._extras = _Extras(client)
        self._uri = client.tracking_uri

    def _experiment(self, experiment_id: str) -> Experiment:
        now = time.monotonic()
        with self._lock:
            hit = self._experiments.get(experiment_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        experiment = self._lookup(experiment_id)
        with self._lock:
            self._experiments[experiment_id] = (experiment, now + EXPERIMENT_TTL_S)
        return experiment

    def write(self, batch: Sequence[Finished]) -> None:
        for experiment_id, group in by_experiment(batch).items():
            for finished in group:
                add_size_stats_to_trace_metadata(finished.trace)
                self._store.start_trace(finished.trace.info)
            self._store.log_spans(experiment_id, [span for f in group for span in f.trace.data.spans])
            for finished in group:
                self._extras.after(finished)

    def describe(self) -> str:
        return "the tracking store"


class RestSink:
    """A tracking server (``http(s)://``): MLflow's trace REST call and its OTLP span endpoint."""

    def __init__(self, client: TracingClient, timeout_s: float) -> None:
        self._rest = client.store
        self._attempt_s = timeout_s / 2
        skip_absent_probes()
        self._extras = _Extras(client)

    def write(self, batch: Sequence[Finished]) -> None:
        creds = self._rest.get_host_creds()
        for experiment_id, group in by_experiment(batch).items():
            for finished in group:
                add_size_stats_to_trace_metadata(finished.trace)
                self._post_json(creds, _V3_TRACE_REST_API_PATH_PREFIX, self._start_body(finished.trace))
            self._post_spans(creds, experiment_id, group)
            for finished in group:
                self._extras.after(finished)

    @property
    def _bounded(self) -> dict[str, Any]:
        return {"max_retries": 1, "backoff_factor": 0, "backoff_jitter": 0, "timeout": self._attempt_s}

    @staticmethod
    def _start_body(trace: Trace) -> str:
        """MLflow's ``StartTraceV3`` body for the trace's info (its spans go over OTLP), as
        ``RestStore.start_trace`` makes it, without the indentation and the JSON round trip."""
        return message_to_json(StartTraceV3(trace=ProtoTrace(trace_info=trace.info.to_proto())), pretty=False)

    def _post_json(self, creds: Any, endpoint: str, body: str) -> None:
        response = http_request(
            creds, endpoint, "POST", **self._bounded, data=body.encode(), extra_headers=_JSON_CONTENT
        )
        verify_rest_response(response, endpoint)

    def _post_spans(self, creds: Any, experiment_id: str, group: Sequence[Finished]) -> None:
        request = export_request([span for f in group for span in f.trace.data.spans])
        response = http_request(
            creds,
            OTLP_TRACES_PATH,
            "POST",
            **self._bounded,
            data=request.SerializeToString(),
            extra_headers={
                "Content-Type": "application/x-protobuf",
                MLFLOW_EXPERIMENT_ID_HEADER: experiment_id,
            },
        )
        verify_rest_response(response, OTLP_TRACES_PATH)

    def describe(self) -> str:
        return "the tracking server"
