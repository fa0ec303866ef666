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
from dataclasses import dataclass
from pathlib import Path

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from agentship.server.core.errors import HttpError
from agentship.server.http.identity import AUTH_IDENTITY
from agentship.server.http.oidc import TokenVerifier, looks_like_jwt

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


def parse_entries(text: str, source: str) -> list[ApiKey]:
    """The keys of ``text`` (entries by comma or line; ``#`` starts a comment). Pure."""
    keys: list[ApiKey] = []
    for line in text.splitlines():
        for entry in line.split("#", 1)[0].split(","):
            entry = entry.strip()
            if not entry:
                continue
            name, sep, secret = entry.partition(":")
            if not sep:
                name, secret = f"key-{hashlib.sha256(entry.encode()).hexdigest()[:12]}", entry
            name, secret = name.strip(), secret.strip()
            if not name or not secret:
                raise KeysError(f"{source}: an entry must be NAME:KEY or KEY, with neither part empty")
            keys.append(ApiKey(name, secret.encode()))
    return keys


class ApiKeys:
    """The accepted keys: from the environment and, re-read when it changes, a key file."""

    def __init__(self, inline: list[ApiKey], file: Path | None = None) -> None:
        self._inline = inline
        self._file = file
        self._file_stamp: tuple[int, int] | None = None
        self._from_file: list[ApiKey] = []
        if file is not None:
            self._reload()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ApiKeys | None:
        """The keys configured in ``environ``, or None when authentication is off."""
        inline = parse_entries(environ.get(KEYS_ENV, ""), KEYS_ENV)
        file = environ.get(KEYS_FILE_ENV)
        if not inline and not file:
            return None
        keys = cls(inline, Path(file) if file else None)
        if not keys.all():
            raise KeysError(f"authentication is configured ({KEYS_ENV}/{KEYS_FILE_ENV}) but no key is given")
        return keys

    def _reload(self) -> None:
        assert self._file is not None
        try:
            stat = self._file.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._file_stamp:
                self._from_file = parse_entries(self._file.read_text(), str(self._file))
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
        return [*self._inline, *self._from_file]

    def identify(self, token: str) -> str | None:
        """The identity of ``token``, or None; every key is compared, in constant time."""
        given, found = token.encode(), None
        for key in self.all():
            if hmac.compare_digest(given, key.secret) and found is None:
                found = key.identity
        return found

    def describe(self) -> str:
        """For the startup log: how many keys and where from; never a key."""
        where = [f"{len(self._inline)} from {KEYS_ENV}"] if self._inline else []
        if self._file is not None:
            where.append(f"{len(self._from_file)} from {self._file}")
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
        await self.app({**scope, AUTH_IDENTITY: identity}, receive, send)

    async def _identity(self, token: str | None) -> str:
        if token is None:
            raise _unauthorized(
                "You didn't provide an API key: send it as 'Authorization: Bearer KEY'.", "missing_api_key"
            )
        if self.tokens is not None and looks_like_jwt(token):
            return await self.tokens.user(token)
        identity = self.keys.identify(token) if token and self.keys is not None else None
        if identity is None:
            raise _unauthorized("Incorrect API key provided.", "invalid_api_key")
        return identity


def keys_from_environ(environ: Mapping[str, str] | None = None) -> ApiKeys | None:
    """The configured keys (:meth:`ApiKeys.from_environ` of ``os.environ`` by default)."""
    return ApiKeys.from_environ(os.environ if environ is None else environ)
