"""Where the state store lives and how long it keeps things: resolved at serve time, never logged.

The URL comes from ``--state-url`` or ``AGENTSHIP_STATE_URL``:

* unset: a SQLite file beside the MLflow tracking store (``agentship-state.db`` next to
  ``mlflow.db`` for a ``sqlite:///`` tracking URI, or next to a file store's directory; in the
  working directory for a remote tracking server): the embedded default, nothing to install;
* ``postgresql+asyncpg://user:password@host/db`` (``postgresql://`` is taken to mean asyncpg):
  production, shared by every replica;
* ``none``: no state at all (clients send whole conversations; ``store`` is ignored).

The URL may hold a password, so it is only ever shown through :func:`redacted`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from agentship.errors import ConfigError

STATE_URL_ENV = "AGENTSHIP_STATE_URL"
TTL_ENV = "AGENTSHIP_STATE_TTL_S"
MAX_ITEMS_ENV = "AGENTSHIP_STATE_MAX_ITEMS"
DEFAULT_TTL_S = 30 * 24 * 3600.0
"""Stored responses and conversations expire 30 days after their last use (as OpenAI's do)."""
DEFAULT_MAX_ITEMS = 1000
"""A conversation keeps at most this many items; older turns are dropped first."""
_DISABLED = {"none", "off", "disabled"}


@dataclass(frozen=True)
class StateSettings:
    url: URL
    ttl_s: float = DEFAULT_TTL_S
    max_items: int = DEFAULT_MAX_ITEMS

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
        try:
            ttl_s = float(environ.get(TTL_ENV) or DEFAULT_TTL_S)
            max_items = int(environ.get(MAX_ITEMS_ENV) or DEFAULT_MAX_ITEMS)
        except ValueError as exc:
            raise ConfigError(f"{TTL_ENV} must be seconds and {MAX_ITEMS_ENV} an integer: {exc}") from exc
        if ttl_s <= 0 or max_items < 2:
            raise ConfigError(f"{TTL_ENV} must be > 0 and {MAX_ITEMS_ENV} at least 2")
        return cls(url, ttl_s, max_items)


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
