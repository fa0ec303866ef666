"""Make a vector store from a folder of files, through the server's own vector stores API.

:func:`ingest` is what ``agentship llama-stack ingest DIR`` (:mod:`.ingest_cli`) runs. Every
supported server line has the OpenAI-compatible vector stores and files APIs: under ``/v1`` on
Llama Stack 0.3 and later and OGX, under ``/v1/openai/v1`` on 0.2 (where a vector store is also
a vector DB, so its id works in ``vector_db_ids`` on the Agents API). The steps: check the
embedding model, upload each file (``files``), create the store, attach the files, and wait
until the server has processed them. A failure once anything exists deletes the store and the
uploaded files, so nothing half-made is left behind.

Errors (the server's own failures are :class:`~agentship.errors.BackendError`, from
:class:`~agentship.llama_stack.http.ServerHTTP`)::

    IngestError                  ingesting stopped; the message names the problem
    ├── NoEmbeddingModelError    the server has no embedding model, or not the one named
    └── FileRejectedError        the server could not process a file
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import openai
from openai.types import FileChunkingStrategyParam

from agentship.errors import AgentError, BackendStatusError
from agentship.llama_stack.http import ServerHTTP
from agentship.upstream import classify

Progress = Callable[[str], None]
POLL_INTERVAL_MS = 250


class IngestError(AgentError):
    """Ingesting stopped; the message names the problem."""


class NoEmbeddingModelError(IngestError):
    """The server has no embedding model, or the one asked for is not one of its embedding models."""


class FileRejectedError(IngestError):
    """The server could not process a file (its type, its content)."""


@dataclass(frozen=True)
class IngestOptions:
    name: str
    """The vector store's name (its id is the server's)."""
    embedding_model: str | None = None
    """None: the server's only embedding model, or its default when it has several."""
    chunk_size: int | None = None
    """Tokens per chunk (overlap: a quarter of it); None: the server's default chunking."""
    wait_s: float = 300.0
    """How long the server may take to process the files, in all."""


@dataclass(frozen=True)
class EmbeddingModel:
    id: str
    dimension: int | None


def collect_files(root: Path) -> list[tuple[str, Path]]:
    """The files to ingest under ``root``, by path relative to it (hidden and empty ones skipped)."""
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.stat().st_size > 0:
            found.append((relative.as_posix(), path))
    return found


def vector_stores_prefix(routes: set[str]) -> str | None:
    """Where the server has the vector stores and files APIs (``/v1`` first); pure."""
    for prefix in ("/v1", "/v1/openai/v1"):
        if {f"{prefix}/vector_stores", f"{prefix}/files"} <= routes:
            return prefix
    return None


def embedding_models(listing: Any) -> list[EmbeddingModel]:
    """The embedding models of a ``/v1/models`` listing (0.2's shape, or 0.3+'s); pure."""
    found = []
    for model in listing.get("data", []) if isinstance(listing, Mapping) else []:
        if not isinstance(model, Mapping):
            continue
        extra = model.get("custom_metadata") or model.get("metadata") or {}
        if (model.get("model_type") or extra.get("model_type")) != "embedding":
            continue
        dimension = extra.get("embedding_dimension")
        found.append(EmbeddingModel(str(model.get("identifier") or model.get("id")), _int(dimension)))
    return found


def choose_embedding_model(
    models: list[EmbeddingModel], wanted: str | None, where: str
) -> EmbeddingModel | None:
    """The model to embed with (None: the server's default); pure."""
    if not models:
        raise NoEmbeddingModelError(
            f"the server at {where} has no embedding model: register one (model_type: embedding) "
            "in its run config"
        )
    if wanted is None:
        return models[0] if len(models) == 1 else None
    matches = [m for m in models if m.id == wanted] or [m for m in models if m.id.split("/", 1)[-1] == wanted]
    if len(matches) != 1:
        known = ", ".join(m.id for m in models)
        raise NoEmbeddingModelError(
            f"{wanted!r} is not an embedding model on {where}; its embedding models: {known}"
        )
    return matches[0]


def chunking(chunk_size: int | None) -> FileChunkingStrategyParam | None:
    """A static chunking strategy of ``chunk_size`` tokens, overlapping by a quarter; pure."""
    if chunk_size is None:
        return None
    return {
        "type": "static",
        "static": {"max_chunk_size_tokens": chunk_size, "chunk_overlap_tokens": chunk_size // 4},
    }


async def ingest(
    http: ServerHTTP, files: list[tuple[str, Path]], options: IngestOptions, progress: Progress
) -> str:
    """Make a vector store of ``files`` (name, path) on the server; returns its id."""
    where = http.base_url
    prefix = vector_stores_prefix(await _routes(http))
    if prefix is None:
        raise IngestError(
            f"the server at {where} has no vector stores API (vector_io and files in its run config)"
        )
    model = choose_embedding_model(
        embedding_models(await http.get("/v1/models")), options.embedding_model, where
    )
    progress(
        f"ingesting {len(files)} file(s) into a new vector store on {where} "
        f"(embedding model: {model.id if model else 'the server default'})"
    )
    client = http.openai_client(prefix)
    made = _Made(client)
    try:
        for name, path in files:
            uploaded = await _call(
                http, client.files.create(file=(name, _read(name, path)), purpose="assistants")
            )
            made.files[uploaded.id] = name
            progress(f"uploaded {name} ({uploaded.bytes} bytes)")
        extra: dict[str, object] = {"embedding_model": model.id} if model else {}
        if model and model.dimension:
            extra["embedding_dimension"] = model.dimension
        store = await _call(http, client.vector_stores.create(name=options.name, extra_body=extra))
        made.store = store.id
        progress(f"created vector store {store.id} named {options.name!r}")
        await _attach(http, client, store.id, made.files, options, progress)
    except BaseException:
        await made.delete(progress)
        raise
    return store.id


async def _attach(
    http: ServerHTTP,
    client: openai.AsyncOpenAI,
    store: str,
    files: Mapping[str, str],
    options: IngestOptions,
    progress: Progress,
) -> None:
    """Attach every file, then wait until the server has processed each one."""
    strategy = chunking(options.chunk_size)
    for file_id in files:
        attach = client.vector_stores.files.create(
            store, file_id=file_id, chunking_strategy=openai.omit if strategy is None else strategy
        )
        await _call(http, attach)
    try:
        async with asyncio.timeout(options.wait_s):
            for file_id, name in files.items():
                polled = client.vector_stores.files.poll(
                    file_id, vector_store_id=store, poll_interval_ms=POLL_INTERVAL_MS
                )
                done = await _call(http, polled)
                if done.status != "completed":
                    reason = done.last_error.message if done.last_error else "the server gave no reason"
                    raise FileRejectedError(f"the server could not process {name} ({done.status}): {reason}")
                progress(f"processed {name}")
    except TimeoutError as exc:
        raise IngestError(f"the server did not process the files within {options.wait_s:g}s") from exc


class _Made:
    """What ingesting has made on the server so far, deleted when it fails."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.client = client
        self.files: dict[str, str] = {}  # file id -> name
        self.store: str | None = None

    async def delete(self, progress: Progress) -> None:
        made: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            (f"file {name}", partial(self.client.files.delete, file_id))
            for file_id, name in self.files.items()
        ]
        if self.store is not None:
            made.insert(
                0, (f"vector store {self.store}", partial(self.client.vector_stores.delete, self.store))
            )
        left = []
        for what, delete in made:
            try:
                await delete()
            except openai.APIError:
                left.append(what)
        if made:
            progress(
                f"deleted what it had made on the server{f', except: {", ".join(left)}' if left else ''}"
            )


async def _routes(http: ServerHTTP) -> set[str]:
    try:
        listing = await http.get("/v1/inspect/routes")
    except BackendStatusError as exc:
        if exc.status in (404, 405):
            return set()
        raise
    return {str(r.get("route")) for r in listing.get("data", []) if isinstance(r, Mapping)}


async def _call[T](http: ServerHTTP, call: Awaitable[T]) -> T:
    """A typed ``openai`` call, its failure classified as the package's error (not logged here)."""
    try:
        return await call
    except openai.APIError as exc:
        raise classify(exc, http.upstream) from exc


def _read(name: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise IngestError(f"cannot read {name}: {exc.strerror}") from exc


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
