"""``python -m serving -m MODEL_URI -p PORT [--host HOST] [--workers N]``: serve any logged or
registered ResponsesAgent (``models:/NAME/VERSION``, ``models:/NAME@alias``, ``runs:/…``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    parser.add_argument("-m", "--model-uri", required=True)
    parser.add_argument("-p", "--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-concurrency", type=int, help="requests in flight per worker (default 256)")
    parser.add_argument("--request-timeout", type=float, help="seconds per request (default 300)")
    parser.add_argument("--max-body-bytes", type=int, help="largest request body (default 1 MiB)")
    parser.add_argument("--graceful-shutdown-timeout", type=float, default=30.0)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The settings travel to every worker through the environment.
    os.environ["SERVING_MODEL_URI"] = args.model_uri
    for name, value in (
        ("SERVING_MAX_CONCURRENCY", args.max_concurrency),
        ("SERVING_REQUEST_TIMEOUT_S", args.request_timeout),
        ("SERVING_MAX_BODY_BYTES", args.max_body_bytes),
    ):
        if value is not None:
            os.environ[name] = str(value)
    uvicorn.run(
        "serving._app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=args.graceful_shutdown_timeout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
