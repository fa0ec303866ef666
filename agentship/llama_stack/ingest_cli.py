"""``agentship llama-stack``: helpers for the Llama Stack / OGX agent.

    agentship llama-stack ingest DIR [--name NAME] [--base-url URL] [--embedding-model MODEL]
        [--chunk-size TOKENS] [--timeout SECONDS]

``ingest`` makes a vector store on the server from the files under ``DIR`` (:mod:`.ingest`) and
prints only its id on stdout, so ``VS=$(agentship llama-stack ingest docs/)`` works; progress
and errors go to stderr. The server is ``--base-url`` or ``LLAMASTACK_BASE_URL``, its key
``LLAMASTACK_API_KEY``. Exit codes: :data:`EXIT_CODES`, chosen by :func:`report`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from agentship.errors import (
    BackendError,
    BackendStatusError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
)
from agentship.llama_stack.config import LlamaStackEnv
from agentship.llama_stack.http import ServerHTTP
from agentship.llama_stack.ingest import (
    FileRejectedError,
    IngestError,
    IngestOptions,
    NoEmbeddingModelError,
    collect_files,
    ingest,
)

EXIT_CODES = {
    0: "the vector store was made (its id is on stdout)",
    1: "the server failed or refused a request, or cannot make vector stores",
    2: "a usage error: an argument, DIR (missing, or no files), no server URL",
    3: "the server is unreachable, or did not answer in time",
    4: "no embedding model: the server has none, or not the one named",
    5: "the server could not process a file (what was made is deleted)",
}
_USAGE = (
    "usage: agentship llama-stack ingest DIR [options]\n\n"
    "  ingest  make a vector store from a folder of files and print its id "
    "(agentship llama-stack ingest --help)\n"
)
REQUEST_TIMEOUT_S = 60.0


def _chunk_size(text: str) -> int:
    value = int(text)
    if not 100 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"{value} is not between 100 and 4096")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def ingest_parser(prog: str = "agentship llama-stack ingest") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Make a vector store on a Llama Stack / OGX server from the files under DIR "
        "(hidden and empty files skipped) and print its id, alone, on stdout; progress goes to stderr.",
    )
    parser.add_argument("dir", metavar="DIR", type=Path, help="the folder of files (read recursively)")
    parser.add_argument(
        "--name", help="the vector store's name (default: DIR's name); the server picks its id"
    )
    parser.add_argument(
        "--base-url", metavar="URL", help="the server, without /v1 (default: $LLAMASTACK_BASE_URL)"
    )
    parser.add_argument(
        "--embedding-model",
        metavar="MODEL",
        help="an embedding model of the server, e.g. openai/text-embedding-3-small (a bare id matches a "
        "provider-prefixed one; default: its only embedding model, or its default one)",
    )
    parser.add_argument(
        "--chunk-size",
        metavar="TOKENS",
        type=_chunk_size,
        help="tokens per chunk, 100-4096, each overlapping the last by a quarter (default: the server's chunking)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=300.0,
        help="how long the server may take to process the files, in all",
    )
    return parser


def ingest_main(argv: list[str], prog: str = "agentship llama-stack ingest") -> int:
    parser = ingest_parser(prog)
    args = parser.parse_args(argv)
    try:
        env = LlamaStackEnv.from_environ(
            {
                "LLAMASTACK_BASE_URL": args.base_url or os.environ.get("LLAMASTACK_BASE_URL", ""),
                "LLAMASTACK_API_KEY": os.environ.get("LLAMASTACK_API_KEY", ""),
            }
        )
    except ConfigError as exc:
        parser.error(f"{exc.message} (or pass --base-url)")
    if not args.dir.is_dir():
        parser.error(f"{args.dir} is not a directory")
    files = collect_files(args.dir)
    if not files:
        parser.error(f"{args.dir} has no files to ingest (hidden and empty files are skipped)")
    options = IngestOptions(
        name=args.name or args.dir.resolve().name,
        embedding_model=args.embedding_model,
        chunk_size=args.chunk_size,
        wait_s=args.timeout,
    )
    logging.basicConfig(level=logging.ERROR)  # the error is reported once, below
    try:
        store = asyncio.run(_run(env, files, options))
    except (IngestError, BackendError) as exc:
        code, message = report(exc)
        print(f"{prog}: {message}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    print(store)
    return 0


async def _run(env: LlamaStackEnv, files: list[tuple[str, Path]], options: IngestOptions) -> str:
    http = ServerHTTP(env.base_url, env.api_key, REQUEST_TIMEOUT_S, max_retries=2)
    try:
        return await ingest(http, files, options, lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        await http.aclose()


def report(exc: IngestError | BackendError) -> tuple[int, str]:
    """The exit code and the message for a failure; pure. The operator runs this command, so the
    server's own words (a backend error's ``detail``) are shown."""
    if isinstance(exc, BackendUnavailableError | BackendTimeoutError):
        return 3, f"{exc.message}: {exc.detail}" if exc.detail else exc.message
    if isinstance(exc, BackendStatusError):
        hint = " (check LLAMASTACK_API_KEY)" if exc.status in (401, 403) else ""
        return 1, f"the Llama Stack server refused a request: {exc.detail or f'HTTP {exc.status}'}{hint}"
    if isinstance(exc, BackendError):
        return 1, f"{exc.message}: {exc.detail}" if exc.detail else exc.message
    if isinstance(exc, NoEmbeddingModelError):
        return 4, exc.message
    if isinstance(exc, FileRejectedError):
        return 5, exc.message
    return 1, exc.message


def main(argv: list[str], prog: str = "agentship llama-stack") -> int:
    if argv[:1] == ["ingest"]:
        return ingest_main(argv[1:], f"{prog} ingest")
    help_asked = argv[:1] in (["-h"], ["--help"])
    print(_USAGE, file=sys.stdout if help_asked else sys.stderr)
    return 0 if help_asked else 2
