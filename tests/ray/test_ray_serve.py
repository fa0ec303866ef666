"""The agent server as a Ray Serve application, on a real local Ray cluster: a head and a worker
node on loopback, ``serve run`` of ``deploy/ray/serve.yaml`` with 2 replicas over one PostgreSQL
state store, in front of the scripted model. Ray comes from ``scripts/ray_env.sh``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from agentship.testing.postgres import PostgresServer
from agentship.testing.processes import ServerProcess, free_port
from agentship.testing.ray_cluster import NODE_IP, RayCluster, find_ray, start_ray_cluster
from tests.e2e.helpers import REPO, run_log_agent
from tests.serving.clients import TOOL_ANSWER, marker

pytestmark = [pytest.mark.e2e, pytest.mark.ray]

REPLICA = "x-agentship-replica"
STATUS = f"""
import json, ray
from ray import serve
ray.init(_node_ip_address={NODE_IP!r}, logging_level="ERROR")
app = serve.status().applications.get("agent")
deployment = app.deployments.get("AgentServer") if app else None
states = deployment.replica_states if deployment else {{}}
print(json.dumps({{"app": app.status if app else None, "replicas": {{str(k): v for k, v in states.items()}}}}))
"""


@dataclass
class Deployed:
    cluster: RayCluster
    url: str
    scripted: ServerProcess

    def status(self) -> dict[str, Any]:
        done = self.cluster.python(STATUS, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    def wait_running(self, replicas: int, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status["app"] == "RUNNING" and status["replicas"] == {"RUNNING": replicas}:
                return
            assert time.monotonic() < deadline, f"not {replicas} running replicas: {status}"
            time.sleep(1)


def serve_config(port: int, env: dict[str, str]) -> dict[str, Any]:
    """deploy/ray/serve.yaml, pointed at this machine's stand-ins."""
    config = yaml.safe_load((REPO / "deploy" / "ray" / "serve.yaml").read_text())
    config["proxy_location"] = "HeadOnly"  # one machine: one proxy, on the head
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    (app,) = config["applications"]
    app["args"]["model_uri"] = "models:/ray-agent@live"
    app["runtime_env"]["env_vars"] = env
    (deployment,) = app["deployments"]
    assert deployment["num_replicas"] == 2
    deployment["ray_actor_options"] = {"num_cpus": 0.5}
    deployment["graceful_shutdown_timeout_s"] = 10
    return dict(config)


@pytest.fixture(scope="module")
def deployed(
    scripted: ServerProcess, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    venv = find_ray()
    if venv is None:
        pytest.skip("Ray is not installed: run scripts/ray_env.sh")
    logged = run_log_agent(
        "--agent", "openai-agents", "--registered-model-name", "ray-agent", "--alias", "live"
    )
    assert logged.returncode == 0, logged.stderr
    started = time.monotonic()
    # One proxy (on the head) for both nodes: let it route to the worker node's replica as well.
    node_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path_factory.mktemp("ray-home")),
        "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0",
    }
    cluster = start_ray_cluster(venv, node_env)
    try:
        port = free_port()
        env = {
            "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"],  # the session's store
            "MLFLOW_EXPERIMENT_NAME": "ray-serve-traces",
            "OPENAI_BASE_URL": scripted.url + "/v1",
            "AGENTSHIP_STATE_URL": postgres.url(postgres.create_database()),
        }
        config = tmp_path_factory.mktemp("serve-config") / "serve.yaml"
        config.write_text(yaml.safe_dump(serve_config(port, env)))
        ran = cluster.cli("serve", "run", "--non-blocking", "--address", cluster.address, str(config))
        assert ran.returncode == 0, ran.stderr[-3000:]
        deployed = Deployed(cluster, f"http://127.0.0.1:{port}", scripted)
        deployed.wait_running(2)
        print(f"Ray cluster up and 2 replicas running in {time.monotonic() - started:.0f}s", file=sys.stderr)
        yield deployed
        cluster.python(
            f"import ray; from ray import serve; ray.init(_node_ip_address={NODE_IP!r}); serve.shutdown()"
        )
    finally:
        left = cluster.stop()
    assert left == [], f"Ray processes still running: {left}"


def ask(deployed: Deployed, text: str, **body: Any) -> httpx.Response:
    payload = {"input": [{"role": "user", "content": text}], **body}
    return httpx.post(f"{deployed.url}/invocations", json=payload, timeout=60)


def test_the_same_routes_and_error_contract_through_rays_proxy(deployed: Deployed) -> None:
    assert httpx.get(f"{deployed.url}/health", timeout=10).json() == {"status": "ok"}
    assert httpx.get(f"{deployed.url}/ready", timeout=10).json()["status"] == "ready"
    assert httpx.get(f"{deployed.url}/v1/models", timeout=10).json()["object"] == "list"
    assert "agentship_requests_total" in httpx.get(f"{deployed.url}/metrics", timeout=10).text
    answer = ask(deployed, "What is the weather in Paris?")
    assert answer.status_code == 200 and answer.json()["output"][-1]["content"][0]["text"] == TOOL_ANSWER
    bad = httpx.post(f"{deployed.url}/invocations", content=b'{"input": [', timeout=10)
    failed = ask(deployed, "[[fail=503]] please")
    missing = httpx.get(f"{deployed.url}/nowhere", timeout=10)
    for reply, status, code in ((bad, 400, None), (failed, 502, "upstream_error"), (missing, 404, None)):
        assert reply.status_code == status, reply.text
        error = reply.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert code is None or error["code"] == code
        assert "Traceback" not in reply.text


def test_requests_are_spread_across_both_replicas(deployed: Deployed) -> None:
    async def burst(client: httpx.AsyncClient) -> list[str]:
        body = {"input": [{"role": "user", "content": "hello [[ttft=0.5]]"}]}
        replies = await asyncio.gather(
            *(client.post(f"{deployed.url}/invocations", json=body) for _ in range(8))
        )
        assert [r.status_code for r in replies] == [200] * 8
        return [r.headers[REPLICA] for r in replies]

    async def scenario() -> Counter[str]:
        served: Counter[str] = Counter()
        async with httpx.AsyncClient(timeout=60) as client:
            for _ in range(4):
                served.update(await burst(client))
        return served

    served = asyncio.run(scenario())
    assert len(served) == 2 and min(served.values()) >= 4, served


async def _timed_stream(url: str, body: dict[str, Any]) -> tuple[str, list[tuple[float, str]]]:
    """The replica and (arrival time, event type) of each event of one SSE stream."""
    events: list[tuple[float, str]] = []
    async with httpx.AsyncClient(timeout=120) as client, client.stream("POST", url, json=body) as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append((time.monotonic(), str(json.loads(line[6:]).get("type"))))
        return reply.headers[REPLICA], events


def test_streams_arrive_incrementally_through_rays_proxy(deployed: Deployed) -> None:
    body = {"input": "tell me a story [[ttft=0.2 latency=3 chunks=10]]", "stream": True}
    _, events = asyncio.run(_timed_stream(f"{deployed.url}/responses", body))
    deltas = [at for at, kind in events if kind == "response.output_text.delta"]
    done = next(at for at, kind in events if kind == "response.completed")
    assert len(deltas) == 10
    assert deltas[-1] - deltas[0] > 1.5, "the deltas arrived together"
    assert done - deltas[0] > 1.5, "the first delta arrived only at the end"


def test_a_conversation_continues_on_the_other_replica(deployed: Deployed) -> None:
    mark = marker()
    url = f"{deployed.url}/responses"
    first = httpx.post(url, json={"input": f"remember {mark}"}, timeout=60)
    assert first.status_code == 200
    for _ in range(20):  # until the second turn lands on the other replica
        second = httpx.post(
            url, json={"input": f"{mark} again", "previous_response_id": first.json()["id"]}, timeout=60
        )
        assert second.status_code == 200, second.text
        if second.headers[REPLICA] != first.headers[REPLICA]:
            break
    else:
        pytest.fail("every second turn went to the first turn's replica")
    recorded = httpx.get(f"{deployed.scripted.url}/scripted/requests", timeout=10).json()
    seen = next(r for r in reversed(recorded) if any(f"{mark} again" in m["text"] for m in r["messages"]))
    assert any(f"remember {mark}" in m["text"] for m in seen["messages"]), "the history did not follow"


def kill_script(replica: str) -> str:
    """A driver that kills the actor of the replica named ``replica`` (its unique id)."""
    return f"""
import ray
ray.init(_node_ip_address={NODE_IP!r}, logging_level="ERROR")
(name,) = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
           if a["name"].startswith("SERVE_REPLICA::") and a["name"].endswith("#" + {replica!r})]
ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
print(name)
"""


async def _stream(url: str, body: dict[str, Any], replica: asyncio.Future[str]) -> list[str]:
    """One SSE stream's event types; ``replica`` is set as soon as its headers arrive."""
    kinds: list[str] = []
    async with httpx.AsyncClient(timeout=120) as client, client.stream("POST", url, json=body) as reply:
        replica.set_result(reply.headers[REPLICA])
        async for line in reply.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                kinds.append(str(json.loads(line[6:]).get("type")))
    return kinds


def test_killing_one_replicas_actor_does_not_fail_requests_to_the_other(deployed: Deployed) -> None:
    url = f"{deployed.url}/invocations"
    body = {
        "input": [{"role": "user", "content": "long story [[ttft=0.1 latency=8 chunks=16]]"}],
        "stream": True,
    }

    async def scenario() -> tuple[str, list[tuple[str, list[str] | BaseException]], list[httpx.Response]]:
        loop = asyncio.get_running_loop()
        replicas = [loop.create_future() for _ in range(6)]
        streams = [asyncio.create_task(_stream(url, body, replica)) for replica in replicas]
        on = [await asyncio.wait_for(replica, 60) for replica in replicas]
        assert len(set(on)) == 2, f"the streams did not spread: {on}"
        victim = on[0]
        killed = await asyncio.to_thread(deployed.cluster.python, kill_script(victim), 120)
        assert killed.returncode == 0, killed.stderr[-2000:]
        done = await asyncio.gather(*streams, return_exceptions=True)
        after = [await asyncio.to_thread(ask, deployed, f"after the kill {i}") for i in range(10)]
        return victim, list(zip(on, done, strict=True)), after

    victim, outcomes, after = asyncio.run(scenario())
    survivors = [kinds for replica, kinds in outcomes if replica != victim]
    assert survivors
    for kinds in survivors:  # every stream on the other replica ran to its end
        assert isinstance(kinds, list), kinds
        assert kinds.count("response.output_text.delta") == 16 and "error" not in kinds, kinds
    assert [reply.status_code for reply in after] == [200] * 10
    assert victim not in {reply.headers[REPLICA] for reply in after}
    deployed.wait_running(2)  # Serve replaces the killed replica


def test_the_serve_configs_validate_against_rays_schema() -> None:
    """deploy/ray's configs and the RayService's serveConfigV2, with Ray Serve's own schema."""
    venv = find_ray()
    if venv is None:
        pytest.skip("Ray is not installed: run scripts/ray_env.sh")
    code = """
import sys, yaml
from ray.serve.schema import ServeDeploySchema
for path in sys.argv[1:]:
    docs = list(yaml.safe_load_all(open(path)))
    config = yaml.safe_load(docs[0]["spec"]["serveConfigV2"]) if docs[0].get("kind") == "RayService" else docs[0]
    ServeDeploySchema.model_validate(config)
    print("ok", path)
"""
    paths = [
        str(REPO / "deploy" / "ray" / n) for n in ("serve.yaml", "serve-autoscaling.yaml", "rayservice.yaml")
    ]
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code, *paths], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("ok ") == 3
