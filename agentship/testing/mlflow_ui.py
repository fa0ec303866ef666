"""A real MLflow UI (``mlflow server``) on loopback, and headless chromium looking at it; and the
same browser taking steps on the agent server's playground page.

Used by ``scripts/screenshots.py`` (the README's pictures), ``tests/e2e/test_mlflow_ui.py`` and
``tests/e2e/test_playground.py``. The browser side is ``scripts/ui/browse.mjs`` (look at a page)
and ``scripts/ui/playground.mjs`` (take steps on the playground): playwright-core driving
Debian's chromium, both installed by ``scripts/ui_tools.sh`` (which prints the directory to pass
as ``tools``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env

_REPO = Path(__file__).resolve().parents[2]
BROWSE = _REPO / "scripts" / "ui" / "browse.mjs"
PLAYGROUND = _REPO / "scripts" / "ui" / "playground.mjs"
UI_TOOLS_SCRIPT = _REPO / "scripts" / "ui_tools.sh"
UI_TOOLS_ENV = "AGENTSHIP_UI_TOOLS"


class BrowserError(RuntimeError):
    """The browser could not open the page, or the page never showed what was awaited."""


def start_mlflow_ui(store_uri: str, log_dir: Path, *, port: int | None = None) -> ServerProcess:
    """``mlflow server`` (the UI and its REST API) over ``store_uri``, one worker."""
    port = port or free_port()
    command = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = venv_env({"MLFLOW_TRACKING_URI": store_uri})
    return start_server(f"mlflow-ui-{port}", command, port=port, log_dir=log_dir, env=env, timeout=180)


def trace_url(ui: ServerProcess, experiment_id: str, trace_id: str) -> str:
    """The UI page that opens one trace (its span tree) over the experiment's trace list."""
    return f"{ui.url}/#/experiments/{experiment_id}/traces?selectedEvaluationId={trace_id}"


def run_url(ui: ServerProcess, experiment_id: str, run_id: str) -> str:
    return f"{ui.url}/#/experiments/{experiment_id}/runs/{run_id}"


def find_ui_tools() -> Path | None:
    """playwright-core's directory (``$AGENTSHIP_UI_TOOLS``, else scripts/ui_tools.sh's), or None."""
    if explicit := os.environ.get(UI_TOOLS_ENV):
        return Path(explicit)
    if shutil.which("node") is None or shutil.which("chromium") is None:
        return None
    found = subprocess.run(["bash", str(UI_TOOLS_SCRIPT)], capture_output=True, text=True, check=False)
    return Path(found.stdout.strip()) if found.returncode == 0 else None


def browse(
    tools: Path, mode: str, url: str, *args: str, wait: Sequence[str] = (), timeout: float = 180
) -> dict[str, Any]:
    """Run ``browse.mjs MODE URL ARGS`` and return what it printed (JSON)."""
    waits = [part for text in wait for part in ("--wait", text)]
    return _node(tools, BROWSE, [mode, url, *args, *waits], timeout)


def _node(tools: Path, script: Path, args: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run one of ``scripts/ui``'s drivers with the installed tools: the JSON it printed last."""
    result = subprocess.run(
        ["node", str(script), *args],
        env={**os.environ, UI_TOOLS_ENV: str(tools)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        shown = " ".join(args[:2])
        raise BrowserError(f"{script.name} {shown} failed:\n{result.stderr[-6000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def page_text(tools: Path, url: str, wait: Sequence[str]) -> str:
    """The text a person sees on ``url`` once it shows everything in ``wait``."""
    return str(browse(tools, "text", url, wait=wait)["text"])


def screenshot(
    tools: Path,
    url: str,
    out: Path,
    wait: Sequence[str],
    *,
    full_screen: bool = False,
    click: str | None = None,
    nth: int = 0,
) -> Path:
    """``url`` as a PNG once it shows ``wait``; ``click``: first select the ``nth`` element that
    shows exactly that text (a span in a trace's tree, say)."""
    extra = ["--full-screen"] if full_screen else []
    if click is not None:
        extra += ["--click", click, "--nth", str(nth)]
    browse(tools, "screenshot", url, str(out), *extra, wait=wait)
    return out


def play(
    tools: Path, url: str, steps: Sequence[dict[str, Any]], work: Path, timeout: float = 120
) -> dict[str, Any]:
    """Take ``steps`` on the playground at ``url`` (``scripts/ui/playground.mjs`` says which);
    returns what it printed: ``results`` (what the page showed), ``calls`` (its requests to the
    server) and ``errors`` (the page's own)."""
    work.mkdir(parents=True, exist_ok=True)
    steps_file = work / "steps.json"
    steps_file.write_text(json.dumps(list(steps)))
    return _node(tools, PLAYGROUND, [url, str(steps_file)], timeout)
