"""Optional bearer-token authentication in front of the agent server.

Keys come from the server's environment, never from the model: ``AGENTSHIP_API_KEYS`` (entries
separated by commas or newlines) and/or the file named by ``AGENTSHIP_API_KEYS_FILE`` (one entry
a line, ``#`` comments; a mounted Kubernetes Secret, say; re-read when it changes). An entry is
``name:key`` (the name is the caller's identity) or a bare ``key`` (its identity is
``key-`` and the first 12 hex digits of the key's SHA-256, stable across replicas). With no
entry (and no identity provider, :mod:`~agentship.server.http.oidc`), authentication is off.
With an identity provider configured, a bearer token shaped like a JWT is verified as its token
instead, and its user claim is the identity.

When on, every route but :data:`OPEN_PATHS` (the routes whose operation is ``open``) needs ``Authorization: Bearer <key>``; a missing or
wrong key gets 401 in the OpenAI error shape. The key's identity is the request's user, by the
identity rule's first step (:mod:`agentship.server.http.identity`): it overrides any
``x-user-id`` header or user the client sent, so a client cannot act as another user. A key file
that becomes unreadable or malformed keeps its last good keys (and says so in the log).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from agentship.server.core.errors import HttpError
from agentship.server.http.identity import AUTH_IDENTITY, AUTH_QUOTA, AUTH_TIER
from agentship.server.http.oidc import TokenVerifier, looks_like_jwt
from agentship.server.http.quotas import QuotaError, parse_options
from agentship.state.usage import Quota

_logger = logging.getLogger("agentship.server")

KEYS_ENV = "AGENTSHIP_API_KEYS"
KEYS_FILE_ENV = "AGENTSHIP_API_KEYS_FILE"
OPEN_PATHS = frozenset(
    {
        "/health", "/ready", "/metrics", "/openapi.json", "/.well-known/agent-card.json",
        "/playground", "/playground/playground.js", "/playground/stream.js", "/playground/playground.css",
    }
)  # fmt: skip
"""Liveness, readiness and the metrics scrape stay open (probes and scrapers send no key), the
A2A agent card, which tells a client how to authenticate, and the playground's page and files (a
browser cannot send a key for a page; the page asks for one and sends it on its own calls)."""


class KeysError(ValueError):
    """A key entry or key file that cannot be used."""


@dataclass(frozen=True)
class ApiKey:
    identity: str
    secret: bytes
    tier: str | None = None
    """The limits tier it is in (:mod:`~agentship.server.http.quotas`), if it names one."""
    quota: Quota = field(default_factory=Quota)
    """Its own limits, over its tier's."""


@dataclass(frozen=True)
class KeyFile:
    """What a key file or ``AGENTSHIP_API_KEYS`` holds: keys, and limits tiers."""

    keys: list[ApiKey] = field(default_factory=list)
    tiers: dict[str, Quota] = field(default_factory=dict)


def parse_key_file(text: str, source: str) -> KeyFile:
    """The keys and tiers of ``text`` (entries by comma or line; ``#`` starts a comment). Pure.

    A key is ``NAME:KEY`` or a bare ``KEY``, then its options (``tier=NAME``, ``rpm=N``, ``tpd=N``);
    a tier is ``tier NAME`` and its limits (``rpm=N``, ``tpd=N``)."""
    parsed = KeyFile()
    for line in text.splitlines():
        for entry in line.split("#", 1)[0].split(","):
            words = entry.split()
            if not words:
                continue
            try:
                if words[0] == "tier":
                    _tier(parsed, words[1:], source)
                else:
                    parsed.keys.append(_key(words, source))
            except QuotaError as exc:
                raise KeysError(str(exc)) from exc
    return parsed


def _tier(parsed: KeyFile, words: list[str], source: str) -> None:
    if not words or "=" in words[0]:
        raise KeysError(f"{source}: a tier is 'tier NAME' and its limits (rpm=N, tpd=N)")
    name = words[0]
    tier, quota = parse_options(words[1:], f"{source}: tier {name}")
    if tier is not None:
        raise KeysError(f"{source}: tier {name}: a tier cannot be in another tier")
    if name in parsed.tiers:
        raise KeysError(f"{source}: tier {name} is defined twice")
    parsed.tiers[name] = quota


def _key(words: list[str], source: str) -> ApiKey:
    entry = words[0]
    name, sep, secret = entry.partition(":")
    if not sep:
        name, secret = f"key-{hashlib.sha256(entry.encode()).hexdigest()[:12]}", entry
    name, secret = name.strip(), secret.strip()
    if not name or not secret:
        raise KeysError(f"{source}: an entry must be NAME:KEY or KEY, with neither part empty")
    tier, quota = parse_options(words[1:], f"{source}: key {name}")
    return ApiKey(name, secret.encode(), tier, quota)


def parse_entries(text: str, source: str) -> list[ApiKey]:
    """The keys of ``text`` (:func:`parse_key_file`)."""
    return parse_key_file(text, source).keys


class ApiKeys:
    """The accepted keys and the limits tiers: from the environment and, re-read when it
    changes, a key file. Tiers alone turn limits on, not authentication."""

    def __init__(self, inline: KeyFile, file: Path | None = None) -> None:
        self._inline = inline
        self._file = file
        self._file_stamp: tuple[int, int] | None = None
        self._from_file = KeyFile()
        if file is not None:
            self._reload()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ApiKeys | None:
        """The keys and tiers configured in ``environ``, or None when there are none."""
        inline = parse_key_file(environ.get(KEYS_ENV, ""), KEYS_ENV)
        file = environ.get(KEYS_FILE_ENV)
        if not inline.keys and not inline.tiers and not file:
            return None
        keys = cls(inline, Path(file) if file else None)
        if not keys.all() and not keys.tiers():
            raise KeysError(f"{KEYS_ENV}/{KEYS_FILE_ENV} is configured but no key or tier is given")
        return keys

    def _reload(self) -> None:
        assert self._file is not None
        try:
            stat = self._file.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._file_stamp:
                self._from_file = parse_key_file(self._file.read_text(), str(self._file))
                self._file_stamp = stamp
        except OSError as exc:
            if self._file_stamp is None:  # at startup: the server must not run without its keys
                raise KeysError(f"cannot read the key file {self._file}: {exc.strerror}") from exc
            _logger.warning("cannot re-read the key file %s: %s; keeping its keys", self._file, exc.strerror)
        except KeysError as exc:
            if self._file_stamp is None:
                raise
            self._file_stamp = stamp  # warn once per change, not on every request
            _logger.warning(
                "the key file %s changed but is not valid (%s); keeping its last good keys", self._file, exc
            )

    def all(self) -> list[ApiKey]:
        if self._file is not None:
            self._reload()
        return [*self._inline.keys, *self._from_file.keys]

    def tiers(self) -> dict[str, Quota]:
        """The limits tiers (a file's over the environment's of the same name)."""
        if self._file is not None:
            self._reload()
        return {**self._inline.tiers, **self._from_file.tiers}

    @property
    def authenticates(self) -> bool:
        """Whether there are keys (tiers alone do not turn authentication on)."""
        return bool(self.all())

    def find(self, token: str) -> ApiKey | None:
        """The key ``token`` is, or None; every key is compared, in constant time."""
        given, found = token.encode(), None
        for key in self.all():
            if hmac.compare_digest(given, key.secret) and found is None:
                found = key
        return found

    def identify(self, token: str) -> str | None:
        """The identity of ``token``, or None."""
        key = self.find(token)
        return None if key is None else key.identity

    def describe(self) -> str:
        """For the startup log: how many keys and tiers and where from; never a key."""
        where = [f"{len(self._inline.keys)} from {KEYS_ENV}"] if self._inline.keys else []
        if self._file is not None:
            where.append(f"{len(self._from_file.keys)} from {self._file}")
        tiers = self.tiers()
        if tiers:
            where.append(f"limits tiers {', '.join(sorted(tiers))}")
        return ", ".join(where)


def guarded(scope: Scope, open_paths: frozenset[str]) -> bool:
    """Whether a middleware acts on ``scope``: an HTTP request to a path not left open."""
    return scope["type"] == "http" and scope["path"] not in open_paths


def _unauthorized(message: str, code: str) -> HttpError:
    return HttpError(401, "invalid_request_error", message, code=code, headers={"WWW-Authenticate": "Bearer"})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
    return None


class BearerAuth:
    """ASGI middleware: checks the bearer key, or the identity provider's token
    (:mod:`~agentship.server.http.oidc`); the identity becomes the request's user."""

    def __init__(self, app: ASGIApp, keys: ApiKeys | None, tokens: TokenVerifier | None = None) -> None:
        self.app = app
        self.keys = keys
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not guarded(scope, OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        try:
            identity = await self._identity(token)
        except HttpError as error:
            _logger.info("%d for %s %s: %s", error.status, scope.get("method"), scope["path"], error.code)
            await JSONResponse(error.body(), status_code=error.status, headers=error.headers)(
                scope, receive, send
            )
            return
        await self.app({**scope, **identity}, receive, send)

    async def _identity(self, token: str | None) -> dict[str, Any]:
        """The scope entries of the caller ``token`` authenticates: its identity, and its limits
        tier and own limits (:mod:`~agentship.server.http.quotas`)."""
        if token is None:
            raise _unauthorized(
                "You didn't provide an API key: send it as 'Authorization: Bearer KEY'.", "missing_api_key"
            )
        if self.tokens is not None and looks_like_jwt(token):
            verified = await self.tokens.verify(token)
            return {AUTH_IDENTITY: verified.user, AUTH_TIER: verified.tier}
        key = self.keys.find(token) if token and self.keys is not None else None
        if key is None:
            raise _unauthorized("Incorrect API key provided.", "invalid_api_key")
        return {AUTH_IDENTITY: key.identity, AUTH_TIER: key.tier, AUTH_QUOTA: key.quota}


def keys_from_environ(environ: Mapping[str, str] | None = None) -> ApiKeys | None:
    """The configured keys (:meth:`ApiKeys.from_environ` of ``os.environ`` by default)."""
    return ApiKeys.from_environ(os.environ if environ is None else environ)
