"""Identity from an identity provider: OIDC / JWT bearer tokens verified against its JWKS.

Configured from the server's environment (never from the model):

* ``AGENTSHIP_OIDC_JWKS_URL``: the provider's JWKS (its ``jwks_uri``); setting it turns tokens on;
* ``AGENTSHIP_OIDC_ISSUER``: the ``iss`` a token must carry (required);
* ``AGENTSHIP_OIDC_AUDIENCE``: the ``aud`` a token must carry (required: a token minted for
  another service is refused);
* ``AGENTSHIP_OIDC_USER_CLAIM``: the claim that names the user (default ``sub``);
* ``AGENTSHIP_OIDC_TIER_CLAIM``: the claim that names the caller's limits tier (optional;
  :mod:`~agentship.server.http.quotas`);
* ``AGENTSHIP_OIDC_ALGORITHMS``: the signature algorithms accepted (default ``RS256,ES256``;
  only asymmetric ones: a token signed with the public key as an HMAC secret is refused).

A token is verified with PyJWT: its signature by the key its ``kid`` names, ``exp`` (required),
``nbf`` and ``iat``, the issuer and the audience, with 30 s of leeway for clocks. The JWKS is
fetched on first use and kept for :data:`JWKS_TTL_S`; a ``kid`` it does not hold makes it
fetched again (the provider rotated its keys), at most once a second, so tokens with made-up
key ids cannot make the server hammer the provider. A provider that cannot be reached is a 503
that names no URL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from agentship.server.core.errors import HttpError

_logger = logging.getLogger("agentship.server")

JWKS_URL_ENV = "AGENTSHIP_OIDC_JWKS_URL"
ISSUER_ENV = "AGENTSHIP_OIDC_ISSUER"
AUDIENCE_ENV = "AGENTSHIP_OIDC_AUDIENCE"
USER_CLAIM_ENV = "AGENTSHIP_OIDC_USER_CLAIM"
ALGORITHMS_ENV = "AGENTSHIP_OIDC_ALGORITHMS"
TIER_CLAIM_ENV = "AGENTSHIP_OIDC_TIER_CLAIM"
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
JWKS_TTL_S = 300.0
"""How long a fetched JWKS is used before it is fetched again."""
REFETCH_S = 1.0
"""The shortest time between two fetches of the JWKS for a ``kid`` it did not hold."""
LEEWAY_S = 30
FETCH_TIMEOUT_S = 5.0
FETCH_ATTEMPTS = 2


class OidcConfigError(ValueError):
    """The OIDC settings cannot be used."""


@dataclass(frozen=True)
class OidcSettings:
    jwks_url: str
    issuer: str
    audience: str
    user_claim: str = "sub"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    tier_claim: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> OidcSettings | None:
        """The settings in ``environ``, or None when tokens are off."""
        url = environ.get(JWKS_URL_ENV, "").strip()
        if not url:
            return None
        if not url.startswith(("https://", "http://")):
            raise OidcConfigError(f"{JWKS_URL_ENV} must be an http(s):// URL")
        missing = [name for name in (ISSUER_ENV, AUDIENCE_ENV) if not environ.get(name, "").strip()]
        if missing:
            raise OidcConfigError(f"{JWKS_URL_ENV} is set, so {' and '.join(missing)} must be too")
        algorithms = tuple(
            a.strip() for a in environ.get(ALGORITHMS_ENV, "RS256,ES256").split(",") if a.strip()
        )
        refused = sorted(set(algorithms) - ASYMMETRIC)
        if not algorithms or refused:
            raise OidcConfigError(
                f"{ALGORITHMS_ENV} must name asymmetric algorithms ({', '.join(sorted(ASYMMETRIC))}), "
                f"not {', '.join(refused) or 'none'}"
            )
        return cls(
            url,
            environ[ISSUER_ENV].strip(),
            environ[AUDIENCE_ENV].strip(),
            environ.get(USER_CLAIM_ENV, "").strip() or "sub",
            algorithms,
            environ.get(TIER_CLAIM_ENV, "").strip() or None,
        )

    def describe(self) -> str:
        """For the startup log: where keys come from and what is checked."""
        return (
            f"OIDC tokens of issuer {self.issuer} for audience {self.audience}, user from '{self.user_claim}'"
        )


def looks_like_jwt(token: str) -> bool:
    """Whether ``token`` has a JWT's shape (three dot-separated parts), rather than a static key's."""
    return token.count(".") == 2


def _unauthorized(message: str) -> HttpError:
    return HttpError(
        401, "invalid_request_error", message, code="invalid_token", headers={"WWW-Authenticate": "Bearer"}
    )


def _unavailable() -> HttpError:
    return HttpError(
        503,
        "server_error",
        "the identity provider's keys cannot be fetched; retry later",
        code="identity_provider_unavailable",
        headers={"Retry-After": "5"},
    )


_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token was not issued for this server (its audience)"),
    (jwt.InvalidIssuerError, "the token was not issued by the configured identity provider"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "the token's signature algorithm is not accepted"),
)


@dataclass(frozen=True)
class Verified:
    """What a verified token says: its user, and its limits tier if the configured claim names one."""

    user: str
    tier: str | None = None


class TokenVerifier:
    """Verifies bearer tokens against the provider's JWKS; the user each one names."""

    def __init__(self, settings: OidcSettings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._http = http or httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._fetching: asyncio.Lock | None = None
        self.fetches = 0

    async def verify(self, token: str) -> Verified:
        """The user (and limits tier) ``token`` names; a 401 naming what is wrong with it, or a
        503 if the provider's keys cannot be had."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _unauthorized("the bearer token is not a well-formed JWT") from exc
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _unauthorized("the token names no signing key (kid)")
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=list(self.settings.algorithms),
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise _unauthorized(_refusal(exc)) from exc
        tier = claims.get(self.settings.tier_claim) if self.settings.tier_claim else None
        return Verified(self._user_of(claims), tier if isinstance(tier, str) and tier else None)

    def _user_of(self, claims: Mapping[str, Any]) -> str:
        user = claims.get(self.settings.user_claim)
        if not isinstance(user, str) or not 1 <= len(user) <= 255 or not user.isprintable():
            raise _unauthorized(f"the token's '{self.settings.user_claim}' claim is not a user id")
        return user

    async def _key(self, kid: str) -> jwt.PyJWK:
        if (key := self._fresh(kid)) is not None:
            return key
        if self._fetching is None:
            self._fetching = asyncio.Lock()
        async with self._fetching:  # one fetch at a time; those who waited use its keys
            if (key := self._fresh(kid)) is not None:
                return key
            if time.monotonic() - self._fetched_at >= REFETCH_S:
                await self._fetch()
        key = self._keys.get(kid)
        if key is None:
            raise _unauthorized("the token's signing key is not among the identity provider's keys")
        return key

    def _fresh(self, kid: str) -> jwt.PyJWK | None:
        if time.monotonic() - self._fetched_at > JWKS_TTL_S:
            return None
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        failure: Exception | None = None
        for attempt in range(FETCH_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.2)
            try:
                answer = await self._http.get(self.settings.jwks_url)
                answer.raise_for_status()
                keys = jwt.PyJWKSet.from_dict(answer.json())
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                failure = exc
                continue
            self._keys = {str(k.key_id): k for k in keys.keys if k.key_id}
            self._fetched_at = time.monotonic()
            self.fetches += 1
            return
        _logger.warning("could not fetch the JWKS at %s: %s", self.settings.jwks_url, failure)
        if self._keys:  # keep the keys we had: the provider is down, the keys are not wrong
            self._fetched_at = time.monotonic() - JWKS_TTL_S + REFETCH_S * 5
            return
        raise _unavailable() from failure

    async def aclose(self) -> None:
        await self._http.aclose()


def _refusal(exc: Exception) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks the required '{exc.claim}' claim"
    for kind, message in _REFUSALS:
        if isinstance(exc, kind):
            return message
    return "the bearer token is not valid"
