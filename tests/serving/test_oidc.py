"""Identity from an identity provider (issue 23): OIDC / JWT bearer tokens verified against a JWKS.

The test is the provider: it generates RSA keys, serves their JWKS on loopback (and counts the
fetches), and mints tokens. Against a real ``python -m serving`` process with
``AGENTSHIP_OIDC_*`` set (and a static key beside them):

* a valid token's ``sub`` is the request's user, on every route: another user's token, or a
  gateway header, reaches none of its data; the static key still works;
* an expired token, another audience, another issuer, a signature by a key the provider does
  not hold, an unknown key id, a token signed with the public key as an HMAC secret, a malformed
  token and a token without the user claim are each a 401 naming the problem, before the model runs;
* the provider rotates its keys: a token of the new key is accepted (the JWKS is fetched again),
  one of the removed key is refused, and tokens with made-up key ids do not make the server
  hammer the provider;
* a provider that cannot be reached is a 503 that names no URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from agentship.testing.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e

ISSUER, AUDIENCE = "https://idp.agentship.test", "agentship-tests"
STATIC_KEY = "static-key-5521"


class Provider:
    """A JWKS endpoint on loopback with keys the test makes and rotates."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                body = json.dumps(provider.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def new_key(self) -> str:
        kid = f"kid-{uuid.uuid4().hex[:8]}"
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, private in self.keys.items():
            jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, kid: str, signer: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, signer or self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    idp = Provider()
    yield idp
    idp.server.shutdown()


@pytest.fixture(scope="module")
def tokened(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess, provider: Provider
) -> ServerProcess:
    provider.new_key()
    return start_serving(
        scripted.url + "/v1",
        name="serving-oidc",
        env={
            "AGENTSHIP_OIDC_JWKS_URL": provider.url,
            "AGENTSHIP_OIDC_ISSUER": ISSUER,
            "AGENTSHIP_OIDC_AUDIENCE": AUDIENCE,
            "AGENTSHIP_API_KEYS": f"ops:{STATIC_KEY}",
        },
    )


def hmac_token(claims: dict[str, Any], kid: str, secret: bytes) -> str:
    """A token "signed" with HS256 and the provider's public key as the secret: the algorithm
    confusion attack (PyJWT will not make one, so it is made by hand)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = part(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{part(signature)}"


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **extra}


def respond(server: ServerProcess, token: str, text: str, **extra: str) -> httpx.Response:
    body = {"model": "agent", "input": text}
    return httpx.post(f"{server.url}/v1/responses", json=body, headers=bearer(token, **extra), timeout=60)


def refused(message: str) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_token"}
    }


def test_a_valid_tokens_subject_is_the_user_on_every_route(
    tokened: ServerProcess, provider: Provider
) -> None:
    kid = next(iter(provider.keys))
    alice, bob = provider.token(kid), provider.token(kid, sub="bob")
    made = respond(tokened, alice, f"alice's {uuid.uuid4().hex[:6]}", **{"x-user-id": "bob"})
    assert made.status_code == 200, made.text
    rid = made.json()["id"]
    assert (
        httpx.get(f"{tokened.url}/v1/responses/{rid}", headers=bearer(alice), timeout=30).status_code == 200
    )
    for headers in (bearer(bob), bearer(bob, **{"x-user-id": "alice"}), bearer(STATIC_KEY)):
        reply = httpx.get(
            f"{tokened.url}/v1/responses/{rid}", headers=headers, params={"user": "alice"}, timeout=30
        )
        assert reply.status_code == 404, reply.text
    assert respond(tokened, STATIC_KEY, "the operator's key").status_code == 200
    missing = httpx.get(f"{tokened.url}/v1/responses/{rid}", timeout=30)
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_api_key")


def test_a_bad_token_is_a_401_naming_the_problem_before_the_model_runs(
    tokened: ServerProcess, provider: Provider, scripted: ServerProcess
) -> None:
    kid = next(iter(provider.keys))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        provider.keys[kid]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    hmac_claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300}
    cases = {
        "the token has expired": provider.token(kid, exp=now - 120, iat=now - 600),
        "the token was not issued for this server (its audience)": provider.token(kid, aud="another-service"),
        "the token was not issued by the configured identity provider": provider.token(
            kid, iss="https://evil.test"
        ),
        "the token's signature does not verify": provider.token(kid, signer=stranger),
        "the token's signing key is not among the identity provider's keys": provider.token(
            "kid-never-published", signer=stranger
        ),
        "the token's signature algorithm is not accepted": hmac_token(hmac_claims, kid, public_pem),
        "the bearer token is not a well-formed JWT": "not.a.jwt",
        "the token's 'sub' claim is not a user id": provider.token(kid, sub=None),
        "the token lacks the required 'exp' claim": provider.token(kid, exp=None),
    }
    needle = uuid.uuid4().hex[:8]
    for message, token in cases.items():
        reply = respond(tokened, token, f"never run {needle}")
        assert (reply.status_code, reply.json()) == (401, refused(message)), message
        assert reply.headers["www-authenticate"] == "Bearer"
    recorded = httpx.get(f"{scripted.url}/scripted/requests", timeout=10).json()
    assert not any(needle in m["text"] for r in recorded for m in r["messages"])


def test_rotated_keys_are_followed_and_made_up_key_ids_do_not_hammer_the_provider(
    tokened: ServerProcess, provider: Provider
) -> None:
    old = next(iter(provider.keys))
    assert respond(tokened, provider.token(old), "before the rotation").status_code == 200
    old_token = provider.token(old)
    new = provider.new_key()
    del provider.keys[old]
    time.sleep(1.1)  # a JWKS is fetched again for an unknown key id at most once a second
    rotated = respond(tokened, provider.token(new), "after the rotation")
    assert rotated.status_code == 200, rotated.text
    assert respond(tokened, old_token, "with the removed key").json() == refused(
        "the token's signing key is not among the identity provider's keys"
    )
    before = provider.fetches
    began = time.monotonic()
    for _ in range(20):
        made_up = provider.token(f"kid-{uuid.uuid4().hex[:8]}", signer=provider.keys[new])
        assert respond(tokened, made_up, "a made-up key id").status_code == 401
    elapsed = time.monotonic() - began
    assert provider.fetches - before <= int(elapsed) + 1


def test_a_provider_that_cannot_be_reached_is_a_503_naming_no_url(
    start_serving: Callable[..., ServerProcess], scripted: ServerProcess, provider: Provider
) -> None:
    gone = f"http://127.0.0.1:{free_port()}/jwks"
    server = start_serving(
        scripted.url + "/v1",
        name="serving-oidc-down",
        env={
            "AGENTSHIP_OIDC_JWKS_URL": gone,
            "AGENTSHIP_OIDC_ISSUER": ISSUER,
            "AGENTSHIP_OIDC_AUDIENCE": AUDIENCE,
        },
    )
    kid = next(iter(provider.keys))
    reply = respond(server, provider.token(kid), "while the provider is away")
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "5"
    assert reply.json() == {
        "error": {
            "message": "the identity provider's keys cannot be fetched; retry later",
            "type": "server_error",
            "param": None,
            "code": "identity_provider_unavailable",
        }
    }
    assert "127.0.0.1" not in reply.text
    assert httpx.get(f"{server.url}/ready", timeout=10).status_code == 200
