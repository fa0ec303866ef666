"""``agentship serve -m MODEL_URI [-p PORT] [-h HOST] [-w WORKERS] [-t TIMEOUT] [--a2a]``: serve
any logged or registered ResponsesAgent (``models:/NAME/VERSION``, ``models:/NAME@alias``,
``runs:/…``, or a model directory). The flags are those of ``mlflow models serve``; ``--a2a``
serves it over the Agent2Agent protocol too; the playground page is at ``/playground`` unless
``--no-playground``. (``python -m agentship.server`` and, from a
checkout, ``python -m serving`` are the same command.)"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile

import uvicorn

from agentship.errors import ConfigError
from agentship.server.http.auth import KEYS_FILE_ENV, KeysError, keys_from_environ
from agentship.server.http.oidc import OidcConfigError, OidcSettings
from agentship.server.observability import otlp
from agentship.server.observability.metrics import MULTIPROC_ENV
from agentship.server.webhooks.settings import NEEDS_STATE, WebhookConfigError, WebhookSettings
from agentship.state.double_texting import POLICIES
from agentship.state.settings import StateSettings


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, add_help=False)
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("-m", "--model-uri", required=True)
    parser.add_argument("-p", "--port", type=int, default=8000)
    parser.add_argument("-h", "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("-w", "--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "-t",
        "--timeout",
        "--request-timeout",
        dest="timeout",
        type=float,
        help="seconds per request (default 300)",
    )
    _limits(parser.add_argument_group("limits"))
    parser.add_argument("--model-name", help="the model name /responses reports (default: the model URI)")
    parser.add_argument(
        "--graceful-shutdown-timeout",
        type=float,
        default=30.0,
        help="on SIGTERM, seconds to let requests in flight finish (default 30)",
    )
    _state(parser.add_argument_group("state"))
    parser.add_argument(
        "--a2a",
        action="store_true",
        help="serve the agent over A2A too: the agent card at /.well-known/agent-card.json and "
        "JSON-RPC (protocol 1.0 and 0.3) at / (needs pip install 'agentship-mlflow[a2a]')",
    )
    parser.add_argument("--a2a-url", help="the URL A2A clients reach this server at, for the agent card")
    parser.add_argument(
        "--no-playground",
        dest="playground",
        action="store_false",
        help="do not serve the playground page at /playground",
    )
    parser.add_argument(
        "--mlflow-ui-url",
        help="the MLflow UI the playground links traces to (default: the tracking URI if it is http(s))",
    )
    parser.add_argument(
        "--api-keys-file",
        help="require a bearer key: a file of NAME:KEY lines, re-read when it changes "
        "(or set $AGENTSHIP_API_KEYS; the key's NAME is the caller's user)",
    )
    parser.add_argument("--log-level", default="warning")
    return parser


def _limits(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument("--max-concurrency", type=int, help="requests in flight per worker (default 256)")
    parser.add_argument(
        "--max-background-runs", type=int, help="background responses running at once per worker (default 64)"
    )
    parser.add_argument("--max-body-bytes", type=int, help="largest request body (default 1 MiB)")
    parser.add_argument(
        "--body-timeout",
        type=float,
        help="seconds a request body may pause while it arrives (default 10); after them it must "
        "also average --body-min-rate",
    )
    parser.add_argument(
        "--body-min-rate", type=float, help="bytes per second a request body must average (default 16384)"
    )


def _state(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--state-url",
        help="the state store: postgresql+asyncpg://… for replicas, sqlite:///FILE, or none "
        "(default: $AGENTSHIP_STATE_URL, else a SQLite file beside the tracking store)",
    )
    parser.add_argument(
        "--state-ttl", type=float, help="seconds stored state lives after its last use (default 30 days)"
    )
    parser.add_argument("--state-max-items", type=int, help="items kept per conversation (default 1000)")
    parser.add_argument(
        "--double-texting",
        choices=POLICIES,
        help="what a message does while a turn of its conversation runs: enqueue (default), "
        "reject (409), interrupt (stop it, keeping its partial output) or rollback (stop and drop it)",
    )


def _check_environment(workers: int) -> str | None:
    """Fail before the workers start on what would fail each of them; set up multi-worker metrics
    (the directory it made for them, if any)."""
    try:
        keys_from_environ()
        OidcSettings.from_environ(os.environ)
        otlp.prepare(os.environ)
    except (KeysError, OidcConfigError, ConfigError) as exc:
        raise SystemExit(f"error: {exc}") from exc
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):  # /metrics sums every worker's
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="agentship-metrics-")
        return os.environ[MULTIPROC_ENV]
    return None


def _check_webhooks() -> None:
    """Fail before the workers start on webhook settings they could not use."""
    try:
        if WebhookSettings.from_environ(os.environ).urls and StateSettings.from_environ(os.environ) is None:
            raise ConfigError(NEEDS_STATE)
    except (WebhookConfigError, ConfigError) as exc:
        raise SystemExit(f"error: {exc}") from exc


def main(argv: list[str] | None = None, prog: str = "agentship serve") -> int:
    args = _parser(prog).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The settings travel to every worker through the environment.
    os.environ["SERVING_MODEL_URI"] = args.model_uri
    if args.api_keys_file:
        os.environ[KEYS_FILE_ENV] = args.api_keys_file
    metrics_dir = _check_environment(args.workers)
    drain = max(0.0, args.graceful_shutdown_timeout - 3.0)  # streams end before uvicorn gives up
    for name, value in (
        ("SERVING_MAX_CONCURRENCY", args.max_concurrency),
        ("SERVING_REQUEST_TIMEOUT_S", args.timeout),
        ("SERVING_MAX_BODY_BYTES", args.max_body_bytes),
        ("SERVING_MAX_BACKGROUND_RUNS", args.max_background_runs),
        ("SERVING_BODY_TIMEOUT_S", args.body_timeout),
        ("SERVING_BODY_MIN_RATE", args.body_min_rate),
        ("SERVING_MODEL_NAME", args.model_name),
        ("SERVING_A2A", "true" if args.a2a or args.a2a_url else None),
        ("SERVING_A2A_URL", args.a2a_url),
        ("SERVING_PLAYGROUND", None if args.playground else "false"),
        ("SERVING_MLFLOW_UI_URL", args.mlflow_ui_url),
        ("SERVING_DOUBLE_TEXTING", args.double_texting),
        ("SERVING_DRAIN_TIMEOUT_S", drain),
        ("AGENTSHIP_STATE_URL", args.state_url),
        ("AGENTSHIP_STATE_TTL_S", args.state_ttl),
        ("AGENTSHIP_STATE_MAX_ITEMS", args.state_max_items),
    ):
        if value is not None:
            os.environ[name] = str(value)
    _check_webhooks()
    uvicorn.run(
        "agentship.server.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=args.graceful_shutdown_timeout,
    )
    if metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
