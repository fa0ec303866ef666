"""Regenerate the README's pictures of the MLflow UI: a request's trace tree and an evaluation run.

    python scripts/screenshots.py [--out docs] [--no-judge] [--keep WORKDIR] [--only trace|evaluation]

It populates a fresh tracking store the way a user would: ``scripts/demo.py`` (log, register,
serve with ``mlflow models serve``, one request), then ``logging_scripts/evaluate_agent.py`` over
the example dataset, with the real small model as MLflow's judge when it is installed
(``scripts/real_model_env.sh``). Then it starts ``mlflow server`` on that store and takes the
pictures with headless chromium (``scripts/ui_tools.sh`` installs it and playwright-core).
Everything runs offline, on loopback.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import mlflow  # noqa: E402
from mlflow.tracing.constant import TraceMetadataKey  # noqa: E402

from agentship.testing.mlflow_ui import find_ui_tools, run_url, screenshot, start_mlflow_ui, trace_url  # noqa: E402
from agentship.testing.processes import ServerProcess, start_scripted_llm  # noqa: E402
from agentship.testing.real_model import MODEL_ALIAS, find_installation, start_llama_server  # noqa: E402

EXPERIMENT = "agentship-demo"


@dataclass(frozen=True)
class Shot:
    url: str
    out: Path
    wait: list[str]
    full_screen: bool = False
    click: str | None = None
    nth: int = 0


def _run(command: list[str], env: Mapping[str, str], what: str) -> str:
    print(f"$ {' '.join(command[1:])}", flush=True)
    result = subprocess.run(command, env=dict(env), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{what} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def populate(env: dict[str, str], stack: ExitStack, logs: Path, judge: bool, evaluate: bool) -> str | None:
    """The demo, then an evaluation of the model it registered; returns the evaluation run id."""
    _run([sys.executable, str(REPO / "scripts" / "demo.py")], env, "the demo")
    if not evaluate:
        return None
    scripted: ServerProcess = start_scripted_llm(logs)
    stack.callback(scripted.stop)
    eval_env = {**env, "OPENAI_BASE_URL": scripted.url + "/v1", "OPENAI_API_KEY": "unused"}
    eval_env["MLFLOW_MODEL_CATALOG_URI"] = ""  # offline: MLflow's judges would fetch a catalog
    judge_args: list[str] = []
    installation = find_installation() if judge else None
    if installation is not None:
        llama = start_llama_server(installation, logs)
        stack.callback(llama.stop)
        eval_env |= {"OPENAI_API_BASE": llama.url + "/v1", "MLFLOW_GENAI_EVAL_MAX_WORKERS": "2"}
        judge_args = ["--judge-model", f"openai:/{MODEL_ALIAS}"]
    elif judge:
        print("no real model installed (scripts/real_model_env.sh): code-based scorers only", flush=True)
    return _run(
        [sys.executable, str(REPO / "logging_scripts" / "evaluate_agent.py"),
         "models:/openai-agents-assistant@champion", "--dataset", str(REPO / "datasets" / "example_agent.jsonl"),
         "--run-name", "evaluate openai-agents-assistant@champion", *judge_args],
        eval_env, "the evaluation",
    )  # fmt: skip


def demo_trace_id(experiment_id: str) -> str:
    """The demo's request (served, so no evaluation run owns it)."""
    traces = mlflow.search_traces(
        locations=[experiment_id], return_type="list", order_by=["timestamp_ms ASC"]
    )
    served = [t for t in traces if TraceMetadataKey.SOURCE_RUN not in t.info.trace_metadata]
    if not served:
        raise SystemExit("the demo left no trace in the store")
    return served[0].info.trace_id


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the PNGs go (docs/)")
    parser.add_argument(
        "--no-judge", action="store_true", help="code-based scorers only, no real-model judge"
    )
    parser.add_argument("--keep", type=Path, help="populate this directory and keep it (default: a temp dir)")
    parser.add_argument(
        "--only", choices=["trace", "evaluation"], help="take only this picture (the other is left as it is)"
    )
    args = parser.parse_args()
    tools = find_ui_tools()
    if tools is None:
        raise SystemExit("no browser: run scripts/ui_tools.sh (needs node, npm, and apt-get for chromium)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="agentship-screenshots-"))
    work.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{work / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MLFLOW_"))}
    env |= {"MLFLOW_TRACKING_URI": store, "MLFLOW_EXPERIMENT_NAME": EXPERIMENT}
    mlflow.set_tracking_uri(store)
    with ExitStack() as stack:
        run_id = populate(env, stack, work / "logs", judge=not args.no_judge, evaluate=args.only != "trace")
        experiment_id = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
        trace_id = demo_trace_id(experiment_id)
        ui = start_mlflow_ui(store, work / "logs")
        stack.callback(ui.stop)
        args.out.mkdir(parents=True, exist_ok=True)
        # The trace with its last model call selected: the messages it was sent (the question,
        # the get_weather call with its arguments, the tool's result) and its answer.
        trace = Shot(trace_url(ui, experiment_id, trace_id), args.out / "mlflow-trace.png", ["get_weather"],
                     full_screen=True, click="generation scripted-model", nth=1)  # fmt: skip
        # The tool span selected: its arguments and its result.
        tool = Shot(trace_url(ui, experiment_id, trace_id), args.out / "mlflow-trace-tool.png", ["get_weather"],
                    full_screen=True, click="get_weather", nth=0)  # fmt: skip
        shots = [trace, tool] if args.only != "evaluation" else []
        if run_id is not None:
            shots.append(Shot(run_url(ui, experiment_id, run_id), args.out / "mlflow-evaluation.png",
                              ["expected_facts/mean"]))  # fmt: skip
        for shot in shots:
            screenshot(
                tools,
                shot.url,
                shot.out,
                shot.wait,
                full_screen=shot.full_screen,
                click=shot.click,
                nth=shot.nth,
            )
            out = shot.out
            print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
