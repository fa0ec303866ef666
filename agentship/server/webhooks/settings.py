"""Webhook settings, from the server's environment (never from the model), and signing.

* ``AGENTSHIP_WEBHOOK_URLS``: where to send the end of every background response (comma- or
  space-separated); setting it turns webhooks on (they need the state store);
* ``AGENTSHIP_WEBHOOK_SECRET``: the signing secret (required with the URLs): ``whsec_`` and
  base64, as Standard Webhooks and OpenAI give them, or any other string, used as it is. Several,
  comma-separated, sign each delivery with each (rotation: receivers accept any of them);
* ``AGENTSHIP_WEBHOOK_TIMEOUT_S``: how long one delivery may take (default 10);
* ``AGENTSHIP_WEBHOOK_RETRY_S``: the wait before the first retry, doubled for each one after, to
  at most an hour (default 5);
* ``AGENTSHIP_WEBHOOK_MAX_ATTEMPTS``: attempts before a notification is given up (default 8: about
  21 minutes of retries at the default wait);
* ``AGENTSHIP_A2A_PUSH_PRIVATE``: ``1`` lets A2A clients register push URLs on loopback and private
  networks (off: they are refused, as the a2a-sdk's validator does, so a client cannot make the
  server call inside its network).

A delivery is signed as Standard Webhooks are (and as OpenAI's webhooks are, so
``client.webhooks.unwrap`` verifies it): ``webhook-signature: v1,<base64 HMAC-SHA256 of
"{webhook-id}.{webhook-timestamp}.{body}">``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

URLS_ENV = "AGENTSHIP_WEBHOOK_URLS"
SECRET_ENV = "AGENTSHIP_WEBHOOK_SECRET"
TIMEOUT_ENV = "AGENTSHIP_WEBHOOK_TIMEOUT_S"
RETRY_ENV = "AGENTSHIP_WEBHOOK_RETRY_S"
ATTEMPTS_ENV = "AGENTSHIP_WEBHOOK_MAX_ATTEMPTS"
A2A_PRIVATE_ENV = "AGENTSHIP_A2A_PUSH_PRIVATE"
MAX_WAIT_S = 3600.0
"""The longest wait between two attempts."""


NEEDS_STATE = (
    "webhook URLs are set, and webhooks are delivered from the state store, which is off "
    "(AGENTSHIP_STATE_URL=none)"
)


class WebhookConfigError(ValueError):
    """The webhook settings cannot be used."""


def _number(environ: Mapping[str, str], name: str, default: float, least: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise WebhookConfigError(f"{name} must be a number, not {raw!r}") from exc
    if value < least:
        raise WebhookConfigError(f"{name} must be at least {least:g}")
    return value


def _key(secret: str) -> bytes:
    if not secret.startswith("whsec_"):
        return secret.encode()
    try:
        return base64.b64decode(secret[6:], validate=True)
    except binascii.Error as exc:
        raise WebhookConfigError(f"{SECRET_ENV}: a 'whsec_' secret must be base64 after its prefix") from exc


@dataclass(frozen=True)
class WebhookSettings:
    urls: tuple[str, ...]
    keys: tuple[bytes, ...]
    timeout_s: float = 10.0
    retry_s: float = 5.0
    max_attempts: int = 8

    def __repr__(self) -> str:  # the keys are secrets
        return (
            f"WebhookSettings(urls={len(self.urls)}, keys={len(self.keys)}, max_attempts={self.max_attempts})"
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WebhookSettings:
        """The settings in ``environ`` (no URLs: webhooks are off; A2A pushes use the rest)."""
        urls = tuple(u for u in re.split(r"[,\s]+", environ.get(URLS_ENV, "")) if u)
        for url in urls:
            if not url.startswith(("https://", "http://")):
                raise WebhookConfigError(f"{URLS_ENV}: each URL must be http(s)://")
        secrets = [s.strip() for s in environ.get(SECRET_ENV, "").split(",") if s.strip()]
        if urls and not secrets:
            raise WebhookConfigError(f"{URLS_ENV} is set, so {SECRET_ENV} must be too: deliveries are signed")
        return cls(
            urls=urls,
            keys=tuple(_key(s) for s in secrets),
            timeout_s=_number(environ, TIMEOUT_ENV, 10.0, 0.1),
            retry_s=_number(environ, RETRY_ENV, 5.0, 0.01),
            max_attempts=int(_number(environ, ATTEMPTS_ENV, 8, 1)),
        )

    def describe(self) -> str:
        return (
            f"webhooks: {len(self.urls)} URL(s), signed, up to {self.max_attempts} attempts "
            f"{self.retry_s:g}s apart and doubling"
        )

    def wait_s(self, attempt: int) -> float:
        """The wait after a failed ``attempt`` (1 for the first) before the next."""
        return float(min(self.retry_s * 2 ** (attempt - 1), MAX_WAIT_S))


def signature(keys: tuple[bytes, ...], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header of a delivery: ``v1,<base64>`` for each key, space-separated."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys
    )


def allow_private_push(environ: Mapping[str, str]) -> bool:
    return environ.get(A2A_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes")
