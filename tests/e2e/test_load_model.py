"""Log the agent, load it back with mlflow.pyfunc.load_model, predict and stream in process."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import mlflow
import pytest

from agentship.model_logging import DEFAULT_CONFIGS, load_config, log_agent
from agentship.testing.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model_uri() -> str:
    # The backend is not running while the model is logged: logging must not need it.
    experiment_id = mlflow.create_experiment("e2e-load-model")
    config = load_config(DEFAULT_CONFIGS["openai-agents"])
    with mlflow.start_run(experiment_id=experiment_id):  # log_agent logs into the active run
        logged = log_agent(
            "openai-agents", {**config, "api": "responses"}, registered_model_name="e2e-load-model"
        )
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    assert logged.version == "1"
    return logged.model_uri


@pytest.fixture
def loaded(
    model_uri: str, scripted: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[mlflow.pyfunc.PyFuncModel]:
    monkeypatch.setenv("OPENAI_BASE_URL", scripted.url + "/v1")
    model = mlflow.pyfunc.load_model(model_uri)
    yield model
    model.get_raw_model().close()


def test_predict_runs_the_tool(loaded: mlflow.pyfunc.PyFuncModel) -> None:
    response = loaded.predict({"input": [{"role": "user", "content": "What is the weather in London?"}]})
    assert [o["type"] for o in response["output"]] == ["function_call", "function_call_output", "message"]
    assert response["output"][1]["output"] == "The weather in London is 12°C and light rain."
    assert response["usage"]["total_tokens"] > 0


def test_stream_delivers_deltas_as_the_backend_paces_them(
    loaded: mlflow.pyfunc.PyFuncModel,
) -> None:
    # The scripted backend spends 2 s streaming 10 chunks after a 0.1 s first token.
    request = {"input": [{"role": "user", "content": "tell me a story [[ttft=0.1 latency=2 chunks=10]]"}]}
    started = time.monotonic()
    arrivals: list[tuple[float, dict]] = []
    for event in loaded.predict_stream(request):
        arrivals.append((time.monotonic() - started, event))
    total = arrivals[-1][0]
    times = [t for t, e in arrivals if e["type"] == "response.output_text.delta"]
    assert len(times) == 10
    assert total >= 2.0
    # Paced about 0.15 s apart by the model, streamed deltas arrive over more than a second; buffered
    # ones arrive together. Load only widens the gaps; the time before the model starts does not count.
    spread = times[-1] - times[0]
    assert spread >= 0.6, f"the deltas arrived within {spread:.2f}s of each other: not streamed"
    assert arrivals[-1][1]["type"] == "response.completed"


def test_reasoning_items_come_back(loaded: mlflow.pyfunc.PyFuncModel) -> None:
    response = loaded.predict({"input": [{"role": "user", "content": "think first [[reason]]"}]})
    kinds = [o["type"] for o in response["output"]]
    assert kinds == ["reasoning", "message"]
    assert "deciding how to answer" in response["output"][0]["summary"][0]["text"]


def test_a_backend_that_goes_down_mid_session_gives_a_clear_error(
    model_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    model = mlflow.pyfunc.load_model(model_uri)
    with pytest.raises(mlflow.exceptions.MlflowException, match="is unreachable") as info:
        model.predict({"input": [{"role": "user", "content": "hi"}]})
    assert info.value.get_http_status_code() == 503
    model.get_raw_model().close()
