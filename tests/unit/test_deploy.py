"""The Kubernetes manifests validate against the Kubernetes schemas and say what they must."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.30.0"


@pytest.mark.parametrize("name", ["deployment.yaml", "service.yaml", "hpa.yaml"])
def test_manifest_is_valid(name: str) -> None:
    for doc in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


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
    assert container["args"][:3] == ["python", "-m", "serving"]
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


def test_dockerfile_serves_the_downloaded_model_with_python_m_serving() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "mlflow artifacts download" in text
    assert 'CMD ["python", "-m", "serving", "-m", "/opt/model"' in text
    assert not re.search(r"^(ENV|ARG)\s+\S*(API_KEY|SECRET)", text, re.MULTILINE), (
        "secrets must not be baked in"
    )
