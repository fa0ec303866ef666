"""agentship-mlflow installed from a built wheel into a fresh venv outside the repository:
the ``agentship`` command logs, registers and serves, the example configs come with it,
``import agents`` is still the OpenAI Agents SDK, and the wheel claims no generic top-level name
(``serving`` is the checkout's entry only). Nothing of the checkout is on the path."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

import agentship
from agentship.server.playground.routes import FILES
from agentship.testing.processes import ServerProcess, free_port, start_server
from tests.serving.clients import TOOL_ANSWER

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "agentship", "serving")


@dataclass(frozen=True)
class Installed:
    """The venv the wheel went into, and a user's working directory beside it."""

    wheel: Path
    venv: Path
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        """A user's environment: the venv's bin on PATH, a tracking store of its own, no checkout."""
        return {
            "PATH": f"{self.venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(self.home),
            "MLFLOW_TRACKING_URI": f"sqlite:///{self.home / 'mlflow.db'}",
            **extra,
        }

    def run(self, *command: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / command[0]), *command[1:]],
            cwd=self.home,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    source, dist = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in SOURCES:  # build from a copy: the build leaves build/ and *.egg-info behind
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, source / name)
    started = time.monotonic()
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            str(dist),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("agentship_mlflow-*.whl")
    venv = tmp_path_factory.mktemp("user-venv")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
    # Installed by uv, as scripts/setup.sh installs the project (pip resolves the same pins, at
    # several times the time): the wheel's own metadata decides what comes with it.
    uv = subprocess.run(["bash", str(REPO / "scripts" / "uv.sh")], capture_output=True, text=True, check=True)
    install = subprocess.run(
        [uv.stdout.strip(), "pip", "install", "--python", str(venv / "bin" / "python"),
         "-c", str(REPO / "requirements" / "constraints.txt"), str(wheel)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    print(f"wheel built and installed in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return Installed(wheel, venv, tmp_path_factory.mktemp("user-home"))


def test_the_wheel_ships_the_package_its_configs_and_model_code_but_no_agents_package(
    installed: Installed,
) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    for shipped in (
        "agentship/configs/openai_agents.yaml",
        "agentship/configs/llama_stack.yaml",
        "agentship/model_code/openai_agents_agent.py",
        "agentship/model_code/llama_stack_agent.py",
        "agentship/state/migrations/versions/0001_initial.py",
        "agentship/server/__main__.py",
        "agentship/client/__main__.py",
        *(f"agentship/server/playground/{name}" for name in FILES),
    ):
        assert shipped in names
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"agentship"}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "agentship = agentship.cli:main" in zipfile.ZipFile(installed.wheel).read(entry_points).decode()


def test_import_agents_is_the_sdk_and_nothing_comes_from_the_checkout(installed: Installed) -> None:
    probe = installed.run(
        "python", "-c", "import agents, agentship, agentship.server; print(agents.Runner.__module__);"
        "print(agents.__file__); print(agentship.__file__); print(agentship.server.__file__)",
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    runner_module, *files = probe.stdout.split()
    assert runner_module.startswith("agents.")
    site = str(installed.venv)
    assert all(f.startswith(site) and "site-packages" in f for f in files), files
    assert not any(f.startswith(str(REPO)) for f in files)
    assert installed.run("agentship", "--version").stdout.strip() == f"agentship {agentship.__version__}"


def test_the_example_configs_come_with_it(installed: Installed) -> None:
    listed = installed.run("agentship", "configs")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert {"openai_agents", "llama_stack", "openai_agents_mcp"} <= set(names)
    copied = installed.run("agentship", "configs", "--copy", "my-configs")
    assert copied.returncode == 0
    assert (installed.home / "my-configs" / "openai_agents.yaml").read_text().startswith("# The OpenAI")


@pytest.fixture(scope="module")
def registered(installed: Installed) -> str:
    installed.run("agentship", "configs", "--copy", "my-configs")
    logged = installed.run(
        "agentship", "log", "--agent", "openai-agents", "--config", "my-configs/openai_agents.yaml",
        "--registered-model-name", "wheel-agent", "--alias", "live",
    )  # fmt: skip
    assert logged.returncode == 0, logged.stderr[-3000:]
    assert logged.stdout.strip().splitlines()[-1] == "models:/wheel-agent/1"
    return "models:/wheel-agent@live"


def _serve(
    installed: Installed, model: str, scripted: ServerProcess, log_dir: Path, name: str
) -> ServerProcess:
    port = free_port()
    return start_server(
        name,
        [str(installed.venv / "bin" / "agentship"), "serve", "-m", model, "-p", str(port)],
        port=port,
        log_dir=log_dir,
        env=installed.env(OPENAI_BASE_URL=scripted.url + "/v1"),
        cwd=installed.home,
        health_path="/ready",
        timeout=120,
    )


@pytest.fixture(scope="module")
def served(
    installed: Installed, registered: str, scripted: ServerProcess, log_dir: Path
) -> Iterator[ServerProcess]:
    server = _serve(installed, registered, scripted, log_dir, "wheel-serve")
    yield server
    server.stop()


def test_agentship_serve_answers_from_the_registered_model(served: ServerProcess) -> None:
    body = {"input": [{"role": "user", "content": "What is the weather in Paris?"}]}
    reply = httpx.post(f"{served.url}/invocations", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"][-1]["content"][0]["text"] == TOOL_ANSWER
    streamed = httpx.post(f"{served.url}/responses", json={"input": "hello", "stream": True}, timeout=60)
    assert "response.completed" in streamed.text
    version = httpx.get(f"{served.url}/version", timeout=10).json()
    assert version["agentship"] == version["model_agentship"] == agentship.__version__
    for name in FILES:  # the playground, from the installed package
        path = "/playground" if name == "index.html" else f"/playground/{name}"
        shipped = httpx.get(f"{served.url}{path}", timeout=10)
        assert shipped.status_code == 200, path
        assert shipped.content == (REPO / "agentship" / "server" / "playground" / name).read_bytes()


def test_the_logged_model_records_the_agentship_version(installed: Installed, registered: str) -> None:
    shown = installed.run(
        "python", "-c", f"import mlflow; print(mlflow.models.get_model_info({registered!r}).metadata)"
    )
    assert shown.returncode == 0, shown.stderr
    assert f"'agentship_version': '{agentship.__version__}'" in shown.stdout


def _model_logged_with(installed: Installed, registered: str, version: str) -> Path:
    """A copy of the registered model that claims to be logged with agentship ``version``."""
    target = installed.home / f"model-{version}"
    fetched = installed.run("mlflow", "artifacts", "download", "-u", registered, "-d", str(target))
    assert fetched.returncode == 0, fetched.stderr
    mlmodel = next(target.rglob("MLmodel"))
    spec = yaml.safe_load(mlmodel.read_text())
    spec["metadata"]["agentship_version"] = version
    mlmodel.write_text(yaml.safe_dump(spec))
    return mlmodel.parent


def test_a_patch_version_apart_warns_and_serves(
    installed: Installed, registered: str, scripted: ServerProcess, log_dir: Path
) -> None:
    major, minor, patch = agentship.__version__.split(".")
    other = f"{major}.{minor}.{int(patch) + 7}"
    server = _serve(
        installed, str(_model_logged_with(installed, registered, other)), scripted, log_dir, "wheel-patch"
    )
    try:
        assert f"logged with agentship {other}; serving it with {agentship.__version__}" in server.log_text()
    finally:
        server.stop()


def test_an_incompatible_version_is_refused_at_startup(
    installed: Installed, registered: str, scripted: ServerProcess, log_dir: Path
) -> None:
    major, minor, _ = agentship.__version__.split(".")
    other = f"{major}.{int(minor) + 1}.0" if major == "0" else f"{int(major) + 1}.0.0"
    model = _model_logged_with(installed, registered, other)
    with pytest.raises(RuntimeError, match="incompatible with the installed"):
        _serve(installed, str(model), scripted, log_dir, "wheel-incompatible")


def test_evaluate_client_and_python_m_agentship_server_are_there_too(installed: Installed) -> None:
    assert installed.run("agentship", "evaluate", "--help").returncode == 0
    assert installed.run("agentship", "client", "--help").returncode == 0
    assert installed.run("python", "-m", "agentship.server", "--help").returncode == 0
    assert installed.run("python", "-m", "agentship.client", "--help").returncode == 0
    no_serving = installed.run("python", "-c", "import serving")
    assert no_serving.returncode == 1 and "No module named 'serving'" in no_serving.stderr
    bad = installed.run("agentship", "nonsense")
    assert bad.returncode == 2 and "usage: agentship" in bad.stderr
