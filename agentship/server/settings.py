"""Server settings, from the command line or ``SERVING_*`` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from agentship.server.http.body import BodyLimits
from agentship.state.double_texting import policy


def _parse(raw: str, kind: str) -> Any:
    if kind in ("str", "str | None"):
        return raw
    if kind == "bool":
        return raw.strip().lower() in ("1", "true", "yes")
    return float(raw) if "float" in kind else int(raw)


@dataclass(frozen=True)
class ServerSettings:
    model_uri: str
    max_concurrency: int = 256
    """Requests in flight per worker; beyond it the server answers 429 with Retry-After."""
    request_timeout_s: float = 300.0
    """Whole-request timeout; the backend work is cancelled and the client gets 504."""
    max_body_bytes: int = 1_048_576
    """Largest request body accepted (413 beyond it)."""
    body_timeout_s: float = 10.0
    """The longest pause while a request body arrives (408 after it), and the grace before
    ``body_min_rate`` applies."""
    body_min_rate: float = 16_384.0
    """Bytes per second a request body must average once ``body_timeout_s`` has passed."""
    retry_after_s: int = 1
    """Retry-After (seconds) sent with a 429."""
    background_timeout_s: float = 3600.0
    """How long a background response may run."""
    max_background_runs: int = 64
    """Background responses running at once on this worker; beyond it, 429 with Retry-After."""
    drain_timeout_s: float = 25.0
    """On SIGTERM, how long open streams may run to their end before they are cut."""
    model_name: str | None = None
    """Name reported as ``model`` in /responses answers (default: the model URI)."""
    a2a: bool = False
    """Serve the agent over A2A too (``/.well-known/agent-card.json`` and JSON-RPC at ``/``)."""
    a2a_url: str | None = None
    """The URL A2A clients reach the server at, for the agent card (default: the request's)."""
    playground: bool = True
    """Serve the playground page at ``/playground`` (a chat with the agent in a browser)."""
    mlflow_ui_url: str | None = None
    """The MLflow UI the playground links each request's trace to (default: the tracking URI,
    when it is an MLflow server's ``http(s)://`` address)."""
    double_texting: str = "enqueue"
    """What a message does when a turn of its conversation is running: ``enqueue`` (wait for
    it), ``reject`` (409), ``interrupt`` (stop it, keeping its partial output) or ``rollback``
    (stop and drop it). A request overrides it with the ``Agentship-Double-Texting`` header."""

    def __post_init__(self) -> None:
        try:
            policy(self.double_texting)
        except ValueError as exc:
            raise ValueError(f"double_texting {exc}") from exc

    @property
    def body_limits(self) -> BodyLimits:
        return BodyLimits(self.max_body_bytes, self.body_timeout_s, self.body_min_rate)

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ServerSettings:
        """From an application's arguments (a Ray Serve config's ``args``): strings are parsed by
        the field's type; unknown names are refused."""
        known = {f.name: str(f.type) for f in fields(cls)}
        unknown = sorted(set(args) - set(known))
        if unknown:
            raise ValueError(f"unknown server settings {unknown}; known: {sorted(known)}")
        values = {k: _parse(v, known[k]) if isinstance(v, str) else v for k, v in args.items()}
        return cls.from_env(**values)

    @classmethod
    def from_env(cls, **overrides: Any) -> ServerSettings:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f"SERVING_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _parse(raw, str(f.type))
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "model_uri" not in values:
            raise ValueError("no model: pass -m MODEL_URI or set SERVING_MODEL_URI")
        return cls(**values)
