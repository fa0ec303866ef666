"""What each environment variable means: the words of the environment page.

The names themselves come from the code (:func:`docs_ref.env_ref.scan`); the page is built only
when every name the code reads has an entry here and every entry names a variable the code reads
(or is marked ``external``: read by MLflow, OpenTelemetry or Ray, not by agentship). The
``SERVING_*`` variables are not here: their defaults and meanings are the server settings' own
(``agentship/server/settings.py``), except the notes in :data:`SERVING_NOTES`.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUPS = {
    "serving": "The server",
    "state": "The state store",
    "auth": "Authentication",
    "webhooks": "Webhooks and A2A push notifications",
    "backend": "Model backends",
    "tracing": "MLflow and trace export",
    "otlp": "OpenTelemetry (OTLP) export",
    "evaluation": "Evaluation",
    "scripts": "Scripts and the test suite",
}
"""The page's sections, in order: a group key, and its heading."""


@dataclass(frozen=True)
class EnvVar:
    name: str
    group: str
    default: str
    meaning: str
    external: bool = False
    """Read by a library agentship configures (MLflow, OpenTelemetry, Ray), not by its own code."""


SERVING_NOTES = {
    "model_uri": "The model to serve: `models:/NAME/VERSION`, `models:/NAME@alias`, `runs:/…` or a "
    "model directory.",
}
"""Meanings for ``ServerSettings`` fields that have no docstring in the code."""

SERVING_EXTRA = {
    "drain_timeout_s": "`agentship serve` sets it to `--graceful-shutdown-timeout` less 3 s (27 s by "
    "default), so streams end before the server stops waiting.",
}
"""What the docstring of a ``ServerSettings`` field leaves out, added after it."""

CATALOG: tuple[EnvVar, ...] = (
    # -- the state store ------------------------------------------------------------------------
    EnvVar(
        "AGENTSHIP_STATE_URL",
        "state",
        "a SQLite file beside the tracking store",
        "Where conversations, stored responses, paused runs, background runs and A2A tasks live: "
        "`postgresql+asyncpg://user:password@host/db` (shared by replicas; `postgresql://` means "
        "asyncpg), `sqlite:///FILE`, or `none` (also `off`, `disabled`) for no state. Unset: "
        "`agentship-state.db` next to a `sqlite:///` tracking store or a file store's directory, "
        "else in the working directory. Never logged with its password.",
    ),
    EnvVar(
        "AGENTSHIP_STATE_TTL_S",
        "state",
        "`2592000` (30 days)",
        "Seconds stored state lives after its last write; purged every 10 minutes.",
    ),
    EnvVar(
        "AGENTSHIP_STATE_MAX_ITEMS",
        "state",
        "`1000`",
        "Items a conversation keeps (at least 2); its oldest whole turns are dropped first.",
    ),
    EnvVar(
        "AGENTSHIP_STATE_POOL_SIZE",
        "state",
        "`5`",
        "Connections each of a process's two engines keeps open on the store (at least 1).",
    ),
    EnvVar(
        "AGENTSHIP_STATE_POOL_OVERFLOW",
        "state",
        "`5`",
        "Connections an engine may open beyond its pool under a burst, closed when returned.",
    ),
    EnvVar(
        "AGENTSHIP_STATE_LEASE_S",
        "state",
        "`15`",
        "How long a conversation's lease lasts unrenewed (at least 1 s); renewed every third of it.",
    ),
    EnvVar(
        "AGENTSHIP_IDEMPOTENCY_TTL_S",
        "state",
        "`86400` (24 hours)",
        "Seconds an `Idempotency-Key` and its kept answer live; purged with the rest of the state.",
    ),
    # -- authentication ---------------------------------------------------------------------------
    EnvVar(
        "AGENTSHIP_API_KEYS",
        "auth",
        "unset: no authentication",
        "Bearer keys the server accepts, `NAME:KEY` entries separated by commas or newlines; the "
        "name is the caller's identity (a bare `KEY` is `key-` and 12 hex digits of its SHA-256).",
    ),
    EnvVar(
        "AGENTSHIP_API_KEYS_FILE",
        "auth",
        "unset",
        "A file of key entries, one a line (`#` comments), re-read when it changes (`--api-keys-file`).",
    ),
    EnvVar(
        "AGENTSHIP_OIDC_JWKS_URL",
        "auth",
        "unset: no tokens",
        "The identity provider's JWKS URL (its `jwks_uri`): bearer tokens that are JWTs are verified "
        "against its keys, fetched on first use, every 5 minutes, and when a token names a key it "
        "does not hold (at most once a second). See [Platform controls](../guides/controls.md).",
    ),
    EnvVar(
        "AGENTSHIP_OIDC_ISSUER", "auth", "unset (required with the JWKS URL)", "The `iss` a token must carry."
    ),
    EnvVar(
        "AGENTSHIP_OIDC_AUDIENCE",
        "auth",
        "unset (required with the JWKS URL)",
        "The `aud` a token must carry: a token minted for another service is refused.",
    ),
    EnvVar("AGENTSHIP_OIDC_USER_CLAIM", "auth", "`sub`", "The token claim that names the request's user."),
    EnvVar(
        "AGENTSHIP_OIDC_TIER_CLAIM",
        "auth",
        "unset",
        "The token claim that names the caller's limits tier (a `tier` of the key file); unset or "
        "absent: the `default` tier.",
    ),
    EnvVar(
        "AGENTSHIP_OIDC_ALGORITHMS",
        "auth",
        "`RS256,ES256`",
        "The signature algorithms accepted, comma-separated; asymmetric ones only.",
    ),
    EnvVar(
        "AGENTSHIP_WEBHOOK_URLS",
        "webhooks",
        "unset: no webhooks",
        "Where the end of every background response is posted (`response.completed`, `failed`, "
        "`cancelled`, `incomplete`), comma- or space-separated. Needs the state store. See "
        "[Platform controls](../guides/controls.md#webhooks-for-background-responses).",
    ),
    EnvVar(
        "AGENTSHIP_WEBHOOK_SECRET",
        "webhooks",
        "unset (required with the URLs)",
        "The signing secret: `whsec_` and base64, as OpenAI and Standard Webhooks give them, or any "
        "other string. Several, comma-separated, sign each delivery with each (rotation). Never "
        "stored, logged or traced.",
    ),
    EnvVar("AGENTSHIP_WEBHOOK_TIMEOUT_S", "webhooks", "`10`", "How long one delivery may take."),
    EnvVar(
        "AGENTSHIP_WEBHOOK_RETRY_S",
        "webhooks",
        "`5`",
        "The wait before the first retry; each later one doubles it, to at most an hour.",
    ),
    EnvVar(
        "AGENTSHIP_WEBHOOK_MAX_ATTEMPTS", "webhooks", "`8`", "Attempts before a notification is given up."
    ),
    EnvVar(
        "AGENTSHIP_A2A_PUSH_PRIVATE",
        "webhooks",
        "unset: refused",
        "`1` lets A2A clients register push-notification URLs on loopback and private networks.",
    ),
    EnvVar(
        "AGENTSHIP_A2A_PUSH_KEY",
        "webhooks",
        "unset: not encrypted",
        "A Fernet key: A2A push configs (their tokens and credentials) are encrypted at rest in the "
        "state store.",
    ),
    EnvVar(
        "AGENTSHIP_API_KEY",
        "auth",
        "unset",
        "The clients' bearer key (`ServedAgent`, `A2AAgent`, `agentship client`) when none is given.",
    ),
    # -- model backends ---------------------------------------------------------------------------
    EnvVar(
        "OPENAI_BASE_URL",
        "backend",
        "OpenAI's API",
        "The OpenAI agent's endpoint, e.g. a vLLM, Ollama or Llama Stack OpenAI-compatible URL. "
        "Read at serve time, never recorded in the model.",
    ),
    EnvVar(
        "OPENAI_API_KEY",
        "backend",
        "unset",
        "The OpenAI agent's key. The model fails to load when neither it nor `OPENAI_BASE_URL` is set.",
    ),
    EnvVar(
        "LLAMASTACK_BASE_URL",
        "backend",
        "required",
        "The Llama Stack / OGX server, without `/v1`, e.g. `http://ogx:8321` (also the server "
        "`agentship llama-stack ingest` makes a vector store on, unless `--base-url` names one).",
    ),
    EnvVar(
        "LLAMASTACK_MODEL",
        "backend",
        "the config's `model`",
        "Model id; a bare id also matches a provider-prefixed one. Overrides `model` in the config.",
    ),
    EnvVar(
        "LLAMASTACK_AGENT_ID",
        "backend",
        "unset: one agent is created at load",
        "Agents API only: use this existing agent (checked at load).",
    ),
    EnvVar(
        "LLAMASTACK_API_KEY",
        "backend",
        "unset",
        "Sent to the Llama Stack server as `Authorization: Bearer …`.",
    ),
    # -- MLflow and trace export ------------------------------------------------------------------
    EnvVar(
        "MLFLOW_TRACKING_URI",
        "tracing",
        "`sqlite:///mlflow.db` for `agentship log`",
        "The tracking store and registry: where models are logged, loaded from and traced to. "
        "`agentship log` and `agentship evaluate` use `./mlflow.db` when it is unset.",
    ),
    EnvVar(
        "MLFLOW_EXPERIMENT_NAME",
        "tracing",
        "`agentship` (log, evaluate)",
        "The experiment runs and traces go to; the server resolves it once at startup.",
    ),
    EnvVar(
        "MLFLOW_EXPERIMENT_ID",
        "tracing",
        "unset",
        "An experiment by id; when set, the commands leave the experiment to MLflow.",
    ),
    EnvVar(
        "MLFLOW_RUN_ID",
        "tracing",
        "unset",
        "Set by `mlflow run`: `agentship log` and `agentship evaluate` log into that run's experiment.",
    ),
    EnvVar(
        "AGENTSHIP_TRACE_EXPORT",
        "tracing",
        "`batched`",
        "`batched`: the server's own batched, bounded trace exporter; `mlflow`: MLflow's. A file "
        "store or Databricks always gets MLflow's.",
    ),
    EnvVar(
        "AGENTSHIP_TRACE_QUEUE_SIZE",
        "tracing",
        "`2000`",
        "Traces waiting to be written, at most; past it a new trace is dropped and counted.",
    ),
    EnvVar("AGENTSHIP_TRACE_BATCH_SIZE", "tracing", "`100`", "Traces in one write, at most."),
    EnvVar("AGENTSHIP_TRACE_FLUSH_INTERVAL_S", "tracing", "`0.5`", "Seconds between writes, at most."),
    EnvVar(
        "AGENTSHIP_TRACE_EXPORT_TIMEOUT_S",
        "tracing",
        "`10`",
        "Seconds one write to a remote tracking server may take.",
    ),
    EnvVar(
        "AGENTSHIP_TRACE_RETRY_MAX_S",
        "tracing",
        "`30`",
        "A failed write is retried, the wait doubling up to this many seconds.",
    ),
    EnvVar(
        "AGENTSHIP_TRACE_SHUTDOWN_TIMEOUT_S",
        "tracing",
        "`10`",
        "Seconds to write what is queued at shutdown.",
    ),
    EnvVar(
        "AGENTSHIP_TRACE_MAX_PAYLOAD_CHARS",
        "tracing",
        "`65536`",
        "Characters of JSON a span's inputs, outputs or attribute may hold before it is cut; `0` for "
        "no bound, else at least 1024.",
    ),
    EnvVar(
        "PROMETHEUS_MULTIPROC_DIR",
        "tracing",
        "a fresh temp dir with `-w` > 1",
        "prometheus-client's multiprocess directory: with several workers `/metrics` sums them all. "
        "The server makes one when it is unset.",
    ),
    # -- OTLP -------------------------------------------------------------------------------------
    EnvVar(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "otlp",
        "unset: no OTLP",
        "The OTLP backend's traces URL: each trace goes there instead of the MLflow store (or "
        "beside it, with `MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT`).",
    ),
    EnvVar(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "otlp",
        "unset",
        "A base URL instead: `/v1/traces` is added (and MLflow exports span metrics too).",
    ),
    EnvVar(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "otlp",
        "`http/protobuf` (set by the server)",
        "The OTLP protocol; `agentship serve` sets it to `http/protobuf` when OTLP is on and it is "
        "unset (MLflow's default, `grpc`, needs another exporter package).",
    ),
    EnvVar(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "otlp",
        "`OTEL_EXPORTER_OTLP_PROTOCOL`",
        "The traces' protocol, if it differs.",
    ),
    EnvVar(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "otlp",
        "unset",
        "Where MLflow exports span metrics; checked for an exporter at startup.",
    ),
    EnvVar(
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "otlp",
        "`OTEL_EXPORTER_OTLP_PROTOCOL`",
        "The span metrics' protocol, if it differs.",
    ),
    EnvVar(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "otlp",
        "unset",
        "Headers for the backend, e.g. `Authorization=Basic%20…`; sent by the exporter, never logged "
        "(the startup line names the variable only).",
    ),
    EnvVar("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "otlp", "unset", "Headers for the traces endpoint only."),
    EnvVar(
        "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT",
        "otlp",
        "`false`",
        "`true`: traces go over OTLP *and* to the MLflow store.",
    ),
    EnvVar(
        "MLFLOW_ENABLE_OTLP_EXPORTER",
        "otlp",
        "`true`",
        "`false` turns MLflow's OTLP export off whatever the endpoint.",
    ),
    EnvVar(
        "OTEL_BSP_SCHEDULE_DELAY",
        "otlp",
        "`5000` ms",
        "The OpenTelemetry batch span processor's delay, for OTLP export.",
        external=True,
    ),
    EnvVar(
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "otlp",
        "`2048` spans",
        "The OpenTelemetry batch span processor's bound, for OTLP export.",
        external=True,
    ),
    # -- evaluation -------------------------------------------------------------------------------
    EnvVar(
        "AGENTSHIP_JUDGE_MODEL",
        "evaluation",
        "unset: no LLM judges",
        "MLflow's LLM judges' model, e.g. `openai:/gpt-4.1-mini` (`--judge-model` wins).",
    ),
    EnvVar(
        "AGENTSHIP_SIMULATOR_MODEL",
        "evaluation",
        "unset",
        "The simulated user's model for `--conversations` (`--simulator-model` wins).",
    ),
    EnvVar(
        "OPENAI_API_BASE",
        "evaluation",
        "`OPENAI_BASE_URL`",
        "Where MLflow sends `openai:/…` judge and simulator calls, so they can use another endpoint "
        "than the agent.",
        external=True,
    ),
    EnvVar(
        "MLFLOW_MODEL_CATALOG_URI",
        "evaluation",
        "MLflow's",
        'Set it to `""` on a machine without internet: MLflow\'s judges otherwise fetch a model catalog.',
        external=True,
    ),
    # -- scripts and the test suite ---------------------------------------------------------------
    EnvVar(
        "AGENTSHIP_PYTHON",
        "scripts",
        "found on `PATH` or pyenv",
        "The Python (3.12 or later) the scripts build `.venv` with.",
    ),
    EnvVar("AGENTSHIP_VENV", "scripts", "`.venv`", "The project's virtualenv (`scripts/setup.sh`)."),
    EnvVar(
        "AGENTSHIP_FLOORS",
        "scripts",
        "`1`",
        "`0` skips the end-to-end subset (`tests/floors.txt`) that `scripts/test.sh` runs at the "
        "lowest versions `pyproject.toml` declares (`scripts/floors.sh`), beside the whole suite.",
    ),
    EnvVar(
        "AGENTSHIP_CACHE",
        "scripts",
        "`~/.cache/agentship`",
        "Where the scripts install what the tests and the docs need besides the project, outside "
        "the clone: Llama Stack servers, Node clients, Phoenix, Ray, the real model, the docs tools.",
    ),
    EnvVar(
        "AGENTSHIP_UV_VERSION",
        "scripts",
        "`0.13.9`",
        "The uv `scripts/uv.sh` fetches when none is on `PATH`.",
    ),
    EnvVar(
        "AGENTSHIP_OPENAI_NEWEST",
        "scripts",
        "set by `scripts/test.sh`",
        "The newest openai-python, to validate the wire objects against.",
    ),
    EnvVar(
        "AGENTSHIP_REAL_MODEL_DIR",
        "scripts",
        "set by `scripts/test.sh`",
        "llama.cpp and Gemma 3 270M, for `tests/realmodel`.",
    ),
    EnvVar(
        "AGENTSHIP_UI_TOOLS",
        "scripts",
        "set by `scripts/test.sh`",
        "Chromium and playwright-core, for the MLflow UI test and the screenshots.",
    ),
    EnvVar(
        "AGENTSHIP_PHOENIX_DIR", "scripts", "set by `scripts/test.sh`", "Arize Phoenix, for the OTLP tests."
    ),
    EnvVar("AGENTSHIP_RAY_DIR", "scripts", "set by `scripts/test.sh`", "Ray Serve's venv, for `tests/ray`."),
)
