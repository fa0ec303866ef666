"""The deployment files say what they must and validate: the Kubernetes manifests against the
Kubernetes schemas (kubernetes-validate), the KServe InferenceService against KServe's own
(its SDK's generated models) and kubernetes-validate for the pod parts, the compose file with
``docker compose config`` where the client has it, the Dockerfiles by what they contain."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit import kserve_schema

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S_VERSION = "1.30.0"
MANIFESTS = sorted(p.name for p in (DEPLOY / "k8s").glob("*.yaml"))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_valid(name: str) -> None:
    for doc in _docs(DEPLOY / "k8s" / name):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_whole_stack_is_there() -> None:
    assert {"deployment.yaml", "service.yaml", "hpa.yaml", "postgres.yaml", "mlflow.yaml", "ogx.yaml"} <= set(
        MANIFESTS
    )
    kinds = {(d["kind"], d["metadata"]["name"]) for n in MANIFESTS for d in _docs(DEPLOY / "k8s" / n)}
    assert {("StatefulSet", "postgres"), ("Service", "postgres"), ("Deployment", "mlflow"), ("Service", "mlflow"),
            ("Deployment", "agent-server"), ("Deployment", "ogx"), ("Service", "ogx")} <= kinds  # fmt: skip
    (mlflow,) = [d for d in _docs(DEPLOY / "k8s" / "mlflow.yaml") if d["kind"] == "Deployment"]
    args = mlflow["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--serve-artifacts" in args and "$(MLFLOW_BACKEND_STORE_URI)" in args
    agent = yaml.safe_load((DEPLOY / "k8s" / "deployment.yaml").read_text())
    env = {e["name"]: e for e in agent["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"  # the mlflow Service
    assert env["OPENAI_BASE_URL"]["value"].startswith("http://ogx:8321/")


def test_the_validator_rejects_a_broken_manifest() -> None:
    doc = yaml.safe_load((DEPLOY / "k8s" / "deployment.yaml").read_text())
    doc["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_deployment_probes_resources_and_secrets() -> None:
    doc = yaml.safe_load((DEPLOY / "k8s" / "deployment.yaml").read_text())
    container = doc["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    secret_env = [e for e in container["env"] if "valueFrom" in e]
    assert [e["valueFrom"]["secretKeyRef"]["key"] for e in secret_env] == [
        "OPENAI_API_KEY",
        "AGENTSHIP_STATE_URL",
    ]
    assert all("value" not in e for e in secret_env)
    assert container["args"][:2] == ["agentship", "serve"]
    # Drain: preStop first, then the server's graceful shutdown, all within the grace period.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = float(container["args"][container["args"].index("--graceful-shutdown-timeout") + 1])
    assert doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > int(pre_stop[1]) + drain


def test_service_and_autoscaler_point_at_the_deployment() -> None:
    deployment = yaml.safe_load((DEPLOY / "k8s" / "deployment.yaml").read_text())
    service = yaml.safe_load((DEPLOY / "k8s" / "service.yaml").read_text())
    hpa = yaml.safe_load((DEPLOY / "k8s" / "hpa.yaml").read_text())
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2


def test_dockerfile_installs_the_wheel_and_takes_no_secret_as_a_build_arg() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "mlflow artifacts download" in text
    assert 'CMD ["agentship", "serve", "-m", "/opt/model"' in text
    assert "pip wheel --no-deps" in text and '"$(ls /dist/agentship_mlflow-*.whl)[a2a,otlp]"' in text
    final = text.split("\nFROM ")[-1]  # the image's own stage: the wheel, not the source tree
    assert not re.search(r"^COPY (agentship|serving|\.)", final, re.MULTILINE)
    assert "--mount=type=secret,id=mlflow_tracking_uri" in text
    args = re.findall(r"^ARG\s+(\w+)", text, re.MULTILINE)
    assert args == ["MODEL_URI"], args
    assert not re.search(r"^ENV\s+.*(API_KEY|SECRET|TOKEN|TRACKING_URI|PASSWORD)", text, re.MULTILINE)


def test_the_mlflow_image_pins_what_the_project_is_tested_with() -> None:
    pins = dict(
        line.split("==") for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line
    )  # fmt: skip
    text = (DEPLOY / "mlflow" / "Dockerfile").read_text()
    for name in ("mlflow", "psycopg2-binary"):
        assert f'"{name}=={pins[name]}"' in text


# -- KServe -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kserve_models() -> dict[str, kserve_schema.Model]:
    found = subprocess.run(
        ["bash", str(REPO / "scripts" / "kserve_schema.sh")], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        pytest.skip(f"KServe's schema is not available: {found.stderr[-500:]}")
    return kserve_schema.load(Path(found.stdout.strip()))


def _pod(walk: kserve_schema.Walk) -> dict[str, Any]:
    """The Kubernetes parts of an InferenceService, as the Pod they become."""
    pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": {}}
    for path, holder, key, value in walk.kubernetes:
        if holder == "V1beta1InferenceService" and key == "metadata":
            pod["metadata"] = value
        elif holder == "V1beta1PredictorSpec":
            pod["spec"][key] = value
        else:
            raise AssertionError(f"{path}: a Kubernetes type this check does not cover")
    return pod


def test_the_inference_service_validates_against_kserves_schema(kserve_models: dict[str, Any]) -> None:
    doc = yaml.safe_load((DEPLOY / "k8s" / "kserve" / "inferenceservice.yaml").read_text())
    problems, walk = kserve_schema.problems(doc, kserve_models)
    assert problems == []
    kubernetes_validate.validate(_pod(walk), K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    ("path", "key", "value", "problem"),
    [
        (("spec", "predictor"), "minReplica", 2, "not a field of V1beta1PredictorSpec"),
        (("spec", "predictor"), "maxReplicas", "ten", "expected int"),
        (("spec",), "predictr", {}, "not a field of V1beta1InferenceServiceSpec"),
    ],
)
def test_the_kserve_check_rejects_a_broken_service(
    kserve_models: dict[str, Any], path: tuple[str, ...], key: str, value: Any, problem: str
) -> None:
    doc = yaml.safe_load((DEPLOY / "k8s" / "kserve" / "inferenceservice.yaml").read_text())
    target = doc
    for part in path:
        target = target[part]
    target[key] = value
    problems, _ = kserve_schema.problems(doc, kserve_models)
    assert any(problem in p for p in problems), problems


def test_the_inference_service_runs_the_same_server_as_the_deployment() -> None:
    service = yaml.safe_load((DEPLOY / "k8s" / "kserve" / "inferenceservice.yaml").read_text())
    deployment = yaml.safe_load((DEPLOY / "k8s" / "deployment.yaml").read_text())
    (container,) = service["spec"]["predictor"]["containers"]
    (original,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "kserve-container" and container["ports"][0]["containerPort"] == 8080
    assert container["args"][:4] == original["args"][:4] and container["args"][5] == "8080"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert [e["name"] for e in container["env"]] == [e["name"] for e in original["env"]]
    assert all("value" not in e for e in container["env"] if "valueFrom" in e)


# -- Ray -----------------------------------------------------------------------------------------
def test_the_rayservice_deploys_the_serve_config() -> None:
    (service,) = _docs(DEPLOY / "ray" / "rayservice.yaml")
    assert service["apiVersion"] == "ray.io/v1" and service["kind"] == "RayService"
    assert yaml.safe_load(service["spec"]["serveConfigV2"]) == yaml.safe_load(
        (DEPLOY / "ray" / "serve.yaml").read_text()
    )
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] and cluster["headGroupSpec"]["template"]["spec"]["containers"]
    for config in ("serve.yaml", "serve-autoscaling.yaml"):
        (app,) = yaml.safe_load((DEPLOY / "ray" / config).read_text())["applications"]
        assert app["import_path"] == "agentship.server.integrations.ray:build_app"
        (deployment,) = app["deployments"]
        assert deployment["name"] == "AgentServer" and deployment["max_ongoing_requests"] >= 64


# -- docker compose ------------------------------------------------------------------------------
def _compose_config() -> dict[str, Any]:
    """The compose file as ``docker compose config`` (or docker-compose's) resolves it, else parsed."""
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "POSTGRES_PASSWORD": "pw-from-env", "HOME": "/tmp"}
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, timeout=30, check=False)
        if probe.returncode != 0:  # docker without its compose plugin
            continue
        done = subprocess.run([*command, "-f", str(DEPLOY / "compose.yaml"), "config"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, f"{' '.join(command)} config refused the file:\n{done.stderr}"
        return dict(yaml.safe_load(done.stdout))
    pytest.skip("no docker compose client here (scripts/test.sh installs docker-compose)")


def test_compose_runs_the_whole_stack() -> None:
    config = _compose_config()
    services = config["services"]
    assert {"postgres", "mlflow", "register", "agent", "scripted", "ogx"} <= set(services)
    agent = services["agent"]
    assert agent["environment"]["AGENTSHIP_STATE_URL"].startswith(
        "postgresql+asyncpg://postgres:pw-from-env@postgres:"
    )
    assert agent["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert agent["depends_on"]["register"]["condition"] == "service_completed_successfully"
    assert services["register"]["command"][:2] == ["agentship", "log"]
    assert services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://")
    raw = (DEPLOY / "compose.yaml").read_text()
    assert "pw-from-env" not in raw and not re.search(r"sk-[A-Za-z0-9]{8,}", raw)


def test_compose_refuses_to_run_without_the_database_password() -> None:
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert raw["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
