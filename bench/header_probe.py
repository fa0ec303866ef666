"""CPU per ``resolve_request_headers()``: MLflow's request headers for one REST call, before and
after ``skip_absent_probes`` marks the absent Databricks modules.

    .venv/bin/python bench/header_probe.py [--calls 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlflow.tracking.request_header.registry import resolve_request_headers

from agentship.trace_export.sinks import skip_absent_probes


def cpu_ms(calls: int) -> float:
    resolve_request_headers()
    started = time.process_time()
    for _ in range(calls):
        resolve_request_headers()
    return (time.process_time() - started) / calls * 1000


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=500)
    calls = parser.parse_args().calls
    before = cpu_ms(calls)
    absent = skip_absent_probes()
    print(
        f"resolve_request_headers: {before:.3f} ms of CPU per call; {cpu_ms(calls):.3f} ms with {absent} marked absent"
    )
