"""Where the state store lives and how long it keeps things: resolved at serve time, never logged.

The URL comes from ``--state-url`` or ``AGENTSHIP_STATE_URL``:

* unset: a SQLite file beside the MLflow tracking store (``agentship-state.db`` next to
  ``mlflow.db`` for a ``sqlite:///`` tracking URI, or next to a file store's directory; in the
  working directory for a remote tracking server): the embedded default, nothing to install;
* ``postgresql+asyncpg://user:password@host/db`` (``postgresql://`` is taken to mean asyncpg):
  production, shared by every replica;
* ``none``: no state at all (clients send whole conversations; ``store`` is ignored).

The URL may hold a password, so it is only ever shown through :func:`redacted`.

Each process opens two engines on the store (the server's and the agent backend's, on their
own event loops), each with a pool of at most ``AGENTSHIP_STATE_POOL_SIZE`` connections (default
5) plus ``AGENTSHIP_STATE_POOL_OVERFLOW`` more under bursts (default 5): a replica with ``-w N``
workers holds up to ``N x 2 x (pool + overflow)`` connections to PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from agentship.errors import ConfigError

STATE_URL_ENV = "AGENTSHIP_STATE_URL"
TTL_ENV = "AGENTSHIP_STATE_TTL_S"
MAX_ITEMS_ENV = "AGENTSHIP_STATE_MAX_ITEMS"
POOL_SIZE_ENV = "AGENTSHIP_STATE_POOL_SIZE"
POOL_OVERFLOW_ENV = "AGENTSHIP_STATE_POOL_OVERFLOW"
LEASE_ENV = "AGENTSHIP_STATE_LEASE_S"
IDEMPOTENCY_TTL_ENV = "AGENTSHIP_IDEMPOTENCY_TTL_S"
DEFAULT_TTL_S = 30 * 24 * 3600.0
"""Stored responses and conversations expire 30 days after their last use (as OpenAI's do)."""
DEFAULT_MAX_ITEMS = 1000
"""A conversation keeps at most this many items; older turns are dropped first."""
DEFAULT_POOL_SIZE = 5
DEFAULT_POOL_OVERFLOW = 5
DEFAULT_LEASE_S = 15.0
"""A conversation's turn holds its lease this long between renewals (renewed every third of it)."""
DEFAULT_IDEMPOTENCY_TTL_S = 24 * 3600.0
"""An ``Idempotency-Key`` and its answer are kept 24 hours (as Stripe keeps them)."""
_DISABLED = {"none", "off", "disabled"}


@dataclass(frozen=True)
class StateSettings:
    url: URL
    ttl_s: float = DEFAULT_TTL_S
    max_items: int = DEFAULT_MAX_ITEMS
    pool_size: int = DEFAULT_POOL_SIZE
    """Connections each engine keeps open (one engine per process and event loop)."""
    pool_overflow: int = DEFAULT_POOL_OVERFLOW
    """Connections an engine may open beyond ``pool_size`` under a burst (closed when returned)."""
    lease_s: float = DEFAULT_LEASE_S
    """How long a conversation's lease lasts unrenewed (a dead replica holds it this long)."""
    idempotency_ttl_s: float = DEFAULT_IDEMPOTENCY_TTL_S
    """How long an ``Idempotency-Key`` is kept with its answer."""

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def describe(self) -> str:
        return redacted(self.url)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> StateSettings | None:
        """The settings, or None when state is switched off (``AGENTSHIP_STATE_URL=none``)."""
        raw = (environ.get(STATE_URL_ENV) or "").strip()
        if raw.lower() in _DISABLED:
            return None
        url = parse_url(raw) if raw else default_url(environ.get("MLFLOW_TRACKING_URI", ""))
        return cls(
            url,
            ttl_s=_number(environ, TTL_ENV, DEFAULT_TTL_S, float, "seconds > 0", lambda v: v > 0),
            max_items=_number(
                environ, MAX_ITEMS_ENV, DEFAULT_MAX_ITEMS, int, "an integer >= 2", lambda v: v >= 2
            ),
            pool_size=_number(
                environ, POOL_SIZE_ENV, DEFAULT_POOL_SIZE, int, "an integer >= 1", lambda v: v >= 1
            ),
            pool_overflow=_number(
                environ, POOL_OVERFLOW_ENV, DEFAULT_POOL_OVERFLOW, int, "an integer >= 0", lambda v: v >= 0
            ),
            lease_s=_number(environ, LEASE_ENV, DEFAULT_LEASE_S, float, "seconds >= 1", lambda v: v >= 1),
            idempotency_ttl_s=_number(
                environ, IDEMPOTENCY_TTL_ENV, DEFAULT_IDEMPOTENCY_TTL_S, float, "seconds > 0", lambda v: v > 0
            ),
        )


def _number[N: (int, float)](
    environ: Mapping[str, str], name: str, default: N, kind: type[N], what: str, valid: Callable[[N], bool]
) -> N:
    """``environ[name]`` as ``kind``, ``default`` if unset; a ConfigError naming it if invalid."""
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be {what}, not {raw!r}") from exc
    if not valid(value):
        raise ConfigError(f"{name} must be {what}, not {raw!r}")
    return value


def redacted(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def parse_url(raw: str) -> URL:
    """A state URL with an async driver: ``sqlite+aiosqlite`` or ``postgresql+asyncpg``."""
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise ConfigError(
            f"{STATE_URL_ENV} is not a database URL (expected e.g. postgresql+asyncpg://…)"
        ) from exc
    backend = url.get_backend_name()
    if backend == "postgresql" and url.get_driver_name() != "asyncpg":
        url = url.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite" and url.get_driver_name() != "aiosqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    elif backend not in ("postgresql", "sqlite"):
        raise ConfigError(
            f"the state store supports PostgreSQL and SQLite, not {backend!r} ({redacted(url)})"
        )
    return url


def default_url(tracking_uri: str) -> URL:
    """The embedded default: a SQLite file beside the tracking store."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "sqlite" and tracking_uri.startswith("sqlite:///"):
        directory = Path(tracking_uri.removeprefix("sqlite:///")).parent
    elif parsed.scheme in ("", "file") and tracking_uri:  # a file store: beside its directory
        directory = Path(parsed.path if parsed.scheme == "file" else tracking_uri).parent
    else:
        directory = Path.cwd()
    return make_url(f"sqlite+aiosqlite:///{directory.resolve() / 'agentship-state.db'}")
