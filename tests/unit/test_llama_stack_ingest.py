"""`agentship llama-stack ingest` without a server: the pure parts, the command's usage errors,
an unreachable server, a server without embedding models; and the RAG example's vector store
ids read from the serving environment. (Against real servers: tests/llama_stack/test_ingest.py.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx2
import pytest
import yaml

from agentship.errors import (
    BackendError,
    BackendStatusError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
)
from agentship.llama_stack import LlamaStackBackend, parse_config
from agentship.llama_stack.config import Toolgroup, with_vector_stores_from_env
from agentship.llama_stack.http import ServerHTTP
from agentship.llama_stack.ingest import (
    EmbeddingModel,
    FileRejectedError,
    IngestError,
    IngestOptions,
    NoEmbeddingModelError,
    choose_embedding_model,
    chunking,
    collect_files,
    embedding_models,
    ingest,
    vector_stores_prefix,
)
from agentship.llama_stack.ingest_cli import main, report
from agentship.model_logging import CONFIGS_DIR
from agentship.testing.processes import free_port

PROG = "agentship llama-stack ingest"
EMBED = EmbeddingModel("openai/scripted-embed", 384)


def test_the_files_are_every_visible_non_empty_file_by_relative_path(tmp_path: Path) -> None:
    for name, text in {"b.md": "b", "a/c.txt": "c", "a/.d.txt": "hidden", ".git/x": "x", "e.txt": ""}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert collect_files(tmp_path) == [("a/c.txt", tmp_path / "a/c.txt"), ("b.md", tmp_path / "b.md")]


@pytest.mark.parametrize(
    ("routes", "prefix"),
    [
        ({"/v1/vector_stores", "/v1/files"}, "/v1"),  # 0.7, OGX
        ({"/v1/openai/v1/vector_stores", "/v1/openai/v1/files"}, "/v1/openai/v1"),  # 0.2
        ({"/v1/vector_stores", "/v1/files", "/v1/openai/v1/vector_stores", "/v1/openai/v1/files"}, "/v1"),
        ({"/v1/vector_stores"}, None),  # no files API
        (set(), None),
    ],
)
def test_the_vector_stores_api_is_found_where_the_server_has_it(routes: set[str], prefix: str | None) -> None:
    assert vector_stores_prefix(routes) == prefix


def test_embedding_models_are_read_from_either_listing_shape() -> None:
    old = {"data": [
        {"identifier": "vllm/m", "model_type": "llm", "metadata": {}},
        {"identifier": "vllm/e", "model_type": "embedding", "metadata": {"embedding_dimension": 384}},
    ]}  # fmt: skip
    new = {"data": [
        {"id": "openai/m", "custom_metadata": {"model_type": "llm"}},
        {"id": "openai/e", "custom_metadata": {"model_type": "embedding", "embedding_dimension": 768}},
        {"id": "openai/f", "custom_metadata": {"model_type": "embedding"}},
    ]}  # fmt: skip
    assert embedding_models(old) == [EmbeddingModel("vllm/e", 384)]
    assert embedding_models(new) == [EmbeddingModel("openai/e", 768), EmbeddingModel("openai/f", None)]


def test_the_embedding_model_is_the_named_one_the_only_one_or_the_servers_default() -> None:
    other = EmbeddingModel("openai/other", None)
    assert choose_embedding_model([EMBED], None, "S") == EMBED
    assert choose_embedding_model([EMBED, other], None, "S") is None
    assert choose_embedding_model([EMBED, other], "scripted-embed", "S") == EMBED
    assert choose_embedding_model([EMBED, other], "openai/other", "S") == other
    with pytest.raises(NoEmbeddingModelError) as wrong:
        choose_embedding_model([EMBED, other], "gpt", "http://s")
    assert wrong.value.message == (
        "'gpt' is not an embedding model on http://s; its embedding models: openai/scripted-embed, openai/other"
    )
    with pytest.raises(NoEmbeddingModelError) as none:
        choose_embedding_model([], None, "http://s")
    assert none.value.message == (
        "the server at http://s has no embedding model: register one (model_type: embedding) in its run config"
    )


def test_a_chunk_size_is_a_static_strategy_overlapping_by_a_quarter() -> None:
    assert chunking(None) is None
    assert chunking(400) == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 100},
    }


def test_a_server_without_embedding_models_fails_before_anything_is_made(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/v1/inspect/routes":
            routes = [{"route": r} for r in ("/v1/vector_stores", "/v1/files", "/v1/models")]
            return httpx2.Response(200, json={"data": routes})
        if request.url.path == "/v1/models":
            return httpx2.Response(
                200, json={"data": [{"id": "m", "custom_metadata": {"model_type": "llm"}}]}
            )
        return httpx2.Response(500)

    async def run() -> str:
        http = ServerHTTP("http://ls.test", None, 5, 0, transport=httpx2.MockTransport(handler))
        try:
            return await ingest(http, [("a.txt", tmp_path)], IngestOptions("kb"), seen.append)
        finally:
            await http.aclose()

    with pytest.raises(NoEmbeddingModelError) as failed:
        asyncio.run(run())
    assert failed.value.message == (
        "the server at http://ls.test has no embedding model: register one (model_type: embedding) "
        "in its run config"
    )
    assert seen == ["GET /v1/inspect/routes", "GET /v1/models"]


def test_an_unreachable_server_exits_3_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.txt").write_text("text")
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["ingest", str(tmp_path), "--base-url", url]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        err.startswith(f"{PROG}: the Llama Stack server is unreachable: GET {url}/v1/inspect/routes: ")
        and err.count("\n") == 1
    )


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (BackendUnavailableError("the Llama Stack server is unreachable", "GET http://s/v1/x: refused"), 3,
         "the Llama Stack server is unreachable: GET http://s/v1/x: refused"),
        (BackendTimeoutError("the Llama Stack server did not answer within 60s", "POST http://s/v1/files"), 3,
         "the Llama Stack server did not answer within 60s: POST http://s/v1/files"),
        (BackendStatusError("generic", 401, "HTTP 401 to GET http://s/v1/models: bad key"), 1,
         "the Llama Stack server refused a request: HTTP 401 to GET http://s/v1/models: bad key "
         "(check LLAMASTACK_API_KEY)"),
        (BackendStatusError("generic", 400, "HTTP 400 to POST http://s/v1/vector_stores: no"), 1,
         "the Llama Stack server refused a request: HTTP 400 to POST http://s/v1/vector_stores: no"),
        (BackendError("the Llama Stack server sent a malformed response", "ValueError()"), 1,
         "the Llama Stack server sent a malformed response: ValueError()"),
        (NoEmbeddingModelError("no embedding model"), 4, "no embedding model"),
        (FileRejectedError("the server could not process a.bin (failed): why"), 5,
         "the server could not process a.bin (failed): why"),
        (IngestError("the server did not process the files within 300s"), 1,
         "the server did not process the files within 300s"),
    ],
)  # fmt: skip
def test_each_failure_has_its_exit_code_and_message(
    error: IngestError | BackendError, code: int, message: str
) -> None:
    assert report(error) == (code, message)


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["DIR"], {}, "LLAMASTACK_BASE_URL is not set: give the Llama Stack server's URL (no /v1) (or pass --base-url)"),
        (["DIR", "--base-url", "http://s/v1"], {}, "LLAMASTACK_BASE_URL='http://s/v1' must not end with /v1 (or pass --base-url)"),
        (["DIR/missing"], {"LLAMASTACK_BASE_URL": "http://s"}, "DIR/missing is not a directory"),
        (["DIR/empty"], {"LLAMASTACK_BASE_URL": "http://s"}, "DIR/empty has no files to ingest (hidden and empty files are skipped)"),
        (["DIR", "--chunk-size", "50"], {"LLAMASTACK_BASE_URL": "http://s"}, "argument --chunk-size: 50 is not between 100 and 4096"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_naming_the_problem(
    argv: list[str],
    environ: dict[str, str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_text("")
    (tmp_path / "a.txt").write_text("text")
    monkeypatch.delenv("LLAMASTACK_BASE_URL", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        main(["ingest", *(a.replace("DIR", str(tmp_path)) for a in argv)])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == f"{PROG}: error: {message.replace('DIR', str(tmp_path))}"


def test_the_command_without_a_subcommand_shows_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage: agentship llama-stack ingest DIR [options]\n")


# -- the RAG example: its vector store ids come from the serving environment -------------------

RAG = {"name": "builtin::rag/knowledge_search", "vector_store_ids_from_env": "VS"}


def test_the_rag_example_reads_its_vector_store_id_at_serve_time() -> None:
    config = parse_config(yaml.safe_load((CONFIGS_DIR / "llama_stack_rag.yaml").read_text()))
    [group] = config.toolgroup_list()
    assert group.vector_store_ids_from_env == "LLAMASTACK_VECTOR_STORE_ID" and group.args == {}
    served = with_vector_stores_from_env(config, {"LLAMASTACK_VECTOR_STORE_ID": "vs_1"})
    assert served.vector_store_ids() == ["vs_1"]
    assert [g.wire() for g in served.toolgroup_list()] == [
        {"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": ["vs_1"]}}
    ]
    assert parse_config(yaml.safe_load((CONFIGS_DIR / "llama_stack.yaml").read_text())).toolgroups == []


@pytest.mark.parametrize(
    ("args", "value", "expected"),
    [
        ({}, "vs_1, vs_2,", {"vector_db_ids": ["vs_1", "vs_2"]}),
        ({"vector_db_ids": ["vs_0"]}, "vs_1", {"vector_db_ids": ["vs_0", "vs_1"]}),
        ({"vector_store_ids": ["vs_0"], "top_k": 3}, "vs_1", {"vector_store_ids": ["vs_0", "vs_1"], "top_k": 3}),
    ],
)  # fmt: skip
def test_ids_from_the_environment_join_those_in_args(args: dict, value: str, expected: dict) -> None:
    config = parse_config({"toolgroups": [{**RAG, "args": args}, "builtin::websearch"]})
    served = with_vector_stores_from_env(config, {"VS": value})
    assert [g.wire() for g in served.toolgroup_list()] == [
        {"name": "builtin::rag/knowledge_search", "args": expected},
        "builtin::websearch",
    ]


@pytest.mark.parametrize("environ", [{}, {"VS": " , "}])
def test_an_unset_variable_fails_the_load_naming_it(environ: dict[str, str]) -> None:
    config = parse_config({"toolgroups": [RAG]})
    with pytest.raises(ConfigError) as failed:
        LlamaStackBackend(config, {"LLAMASTACK_BASE_URL": "http://ls.test", **environ})
    assert failed.value.message == (
        "toolgroup 'builtin::rag/knowledge_search' reads its vector store ids from $VS, which is not set: "
        "make a vector store (agentship llama-stack ingest DIR) and set VS to its id"
    )


def test_only_a_rag_toolgroup_reads_vector_stores_from_the_environment() -> None:
    with pytest.raises(ConfigError, match="vector_store_ids_from_env is for builtin::rag toolgroups"):
        parse_config({"toolgroups": [{"name": "builtin::websearch", "vector_store_ids_from_env": "VS"}]})


def test_the_agents_api_is_sent_a_toolgroup_without_the_variables_name() -> None:
    group = Toolgroup(name="builtin::rag", args={"vector_db_ids": ["vs_1"]}, vector_store_ids_from_env="VS")
    assert json.loads(json.dumps(group.wire())) == {
        "name": "builtin::rag",
        "args": {"vector_db_ids": ["vs_1"]},
    }
    assert Toolgroup(name="builtin::websearch").wire() == "builtin::websearch"
