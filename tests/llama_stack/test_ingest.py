"""`agentship llama-stack ingest` against every real server line: the id it prints is a vector
store holding the folder's files, searchable; and what it cannot do fails with a code and a
message, leaving nothing behind. (The store serving a RAG agent: test_serve.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentship.llama_stack.ingest_cli import main
from tests.llama_stack.conftest import FACT, HANDBOOK, REPO, Ingested, Target

pytestmark = [pytest.mark.llamastack]

PROG = "agentship llama-stack ingest"


def _get(target: Target, path: str) -> Any:
    reply = httpx.get(f"{target.base_url}{target.vector_stores}{path}", timeout=30)
    reply.raise_for_status()
    return reply.json()


def _stores_named(target: Target, name: str) -> list[str]:
    return [s["id"] for s in _get(target, "/vector_stores?limit=100")["data"] if s["name"] == name]


def test_it_prints_only_the_id_of_a_store_holding_every_file(
    server_target: Target, ingested: Callable[[Target], Ingested]
) -> None:
    run = ingested(server_target)
    assert run.returncode == 0, run.stderr
    store = run.stdout.removesuffix("\n")
    assert run.stdout == f"{store}\n" and store.startswith("vs_")
    assert _stores_named(server_target, run.name) == [store]
    counts = _get(server_target, f"/vector_stores/{store}")["file_counts"]
    assert (counts["completed"], counts["failed"], counts["total"]) == (3, 0, 3)
    files = _get(server_target, f"/vector_stores/{store}/files")["data"]
    assert [f["status"] for f in files] == ["completed"] * 3
    names = sorted(_get(server_target, f"/files/{f['id']}")["filename"] for f in files)
    if server_target.name in ("responses-0.7", "responses-1.5"):  # they keep "notes/x" as "notes_x"
        assert names == sorted(n.replace("/", "_") for n in HANDBOOK)
    else:  # the hidden and the empty file were skipped
        assert names == sorted(HANDBOOK)
    assert run.stderr.splitlines() == [
        f"ingesting 3 file(s) into a new vector store on {server_target.base_url} "
        f"(embedding model: {server_target.embedding_model})",
        *(f"uploaded {name} ({len(HANDBOOK[name])} bytes)" for name in sorted(HANDBOOK)),
        f"created vector store {store} named {run.name!r}",
        *(f"processed {name}" for name in sorted(HANDBOOK)),
    ]


def test_the_command_prints_the_id_alone_for_a_shell_to_keep(
    target_responses_07: Target, handbook: Path, tmp_path: Path
) -> None:
    target = target_responses_07
    name = f"shell-{uuid.uuid4().hex[:6]}"
    script = f'VS=$("{sys.executable}" -m agentship.cli llama-stack ingest "{handbook}" --name {name}) && echo "[$VS]"'
    shell = subprocess.run(
        ["bash", "-c", script],
        env={**os.environ, "LLAMASTACK_BASE_URL": target.base_url},  # the server from the environment
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    [store] = _stores_named(target, name)
    assert shell.stdout == f"[{store}]\n"
    assert "Traceback" not in shell.stderr


def test_a_search_finds_a_file_as_one_chunk(
    server_target: Target, ingested: Callable[[Target], Ingested]
) -> None:
    store = ingested(server_target).stdout.strip()
    reply = httpx.post(
        f"{server_target.base_url}{server_target.vector_stores}/vector_stores/{store}/search",
        json={"query": "Zorblax purple fruit Mars", "max_num_results": 1},
        timeout=30,
    )
    reply.raise_for_status()
    [hit] = reply.json()["data"]
    assert [(c["type"], c["text"]) for c in hit["content"]] == [("text", FACT)]


def test_a_file_the_server_rejects_fails_naming_it_and_leaves_nothing(
    server_target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = uuid.uuid4().hex[:6]
    (tmp_path / f"good-{token}.txt").write_text("A perfectly good sentence.")
    (tmp_path / f"blob-{token}.bin").write_bytes(b"\x00\x01\x02\xff\xfe")
    name = f"rejected-{token}"
    code = main(["ingest", str(tmp_path), "--name", name, "--base-url", server_target.base_url])
    out, err = capsys.readouterr()
    assert (code, out) == (5, "")
    *progress, last = err.splitlines()
    assert progress[-1] == "deleted what it had made on the server"
    prefix = f"{PROG}: the server could not process blob-{token}.bin (failed): "
    reason = last.removeprefix(prefix)
    assert last.startswith(prefix)
    if server_target.name == "responses-1.5":  # OGX names the cause; the others give none
        assert reason.endswith(
            "422: File type 'application/octet-stream' is not supported by the pypdf file processor. "
            "Supported types: PDF and text files (txt, csv, md, etc.)."
        )
    else:
        assert reason == "the server gave no reason"
    assert _stores_named(server_target, name) == []
    left = [
        f["filename"] for f in _get(server_target, "/files?limit=10000")["data"] if token in f["filename"]
    ]
    assert left == []


def test_a_model_that_is_not_an_embedding_model_fails_before_anything_is_made(
    server_target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.txt").write_text("text")
    name = f"not-made-{uuid.uuid4().hex[:6]}"
    argv = ["ingest", str(tmp_path), "--name", name, "--embedding-model", "scripted-model"]
    code = main([*argv, "--base-url", server_target.base_url])
    out, err = capsys.readouterr()
    assert (code, out) == (4, "")
    assert err == (
        f"{PROG}: 'scripted-model' is not an embedding model on {server_target.base_url}; "
        f"its embedding models: {server_target.embedding_model}\n"
    )
    assert _stores_named(server_target, name) == []
