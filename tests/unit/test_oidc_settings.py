"""The OIDC settings from the environment (:class:`agentship.server.http.oidc.OidcSettings`): off
unless the JWKS URL is set, and refused, naming the problem, when they cannot be used."""

from __future__ import annotations

import pytest

from agentship.server.http.oidc import OidcConfigError, OidcSettings, looks_like_jwt

BASE = {
    "AGENTSHIP_OIDC_JWKS_URL": "https://idp.example/jwks",
    "AGENTSHIP_OIDC_ISSUER": "https://idp.example",
    "AGENTSHIP_OIDC_AUDIENCE": "agentship",
}


def test_off_without_a_jwks_url_and_complete_with_one() -> None:
    assert OidcSettings.from_environ({}) is None
    assert OidcSettings.from_environ({"AGENTSHIP_OIDC_ISSUER": "https://idp.example"}) is None
    assert OidcSettings.from_environ(BASE) == OidcSettings(
        "https://idp.example/jwks", "https://idp.example", "agentship", "sub", ("RS256", "ES256")
    )
    custom = {**BASE, "AGENTSHIP_OIDC_USER_CLAIM": "email", "AGENTSHIP_OIDC_ALGORITHMS": "ES384, PS256"}
    assert OidcSettings.from_environ(custom) == OidcSettings(
        "https://idp.example/jwks", "https://idp.example", "agentship", "email", ("ES384", "PS256")
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"AGENTSHIP_OIDC_JWKS_URL": "file:///etc/keys"},
            "AGENTSHIP_OIDC_JWKS_URL must be an http(s):// URL",
        ),
        (
            {"AGENTSHIP_OIDC_ISSUER": "", "AGENTSHIP_OIDC_AUDIENCE": " "},
            "AGENTSHIP_OIDC_JWKS_URL is set, so AGENTSHIP_OIDC_ISSUER and AGENTSHIP_OIDC_AUDIENCE must be too",
        ),
        (
            {"AGENTSHIP_OIDC_ALGORITHMS": "RS256,HS256"},
            "AGENTSHIP_OIDC_ALGORITHMS must name asymmetric algorithms (ES256, ES384, ES512, EdDSA, PS256, "
            "PS384, PS512, RS256, RS384, RS512), not HS256",
        ),
        (
            {"AGENTSHIP_OIDC_ALGORITHMS": " , "},
            "AGENTSHIP_OIDC_ALGORITHMS must name asymmetric algorithms (ES256, ES384, ES512, EdDSA, PS256, "
            "PS384, PS512, RS256, RS384, RS512), not none",
        ),
    ],
)
def test_settings_that_cannot_be_used_are_refused_naming_why(change: dict[str, str], message: str) -> None:
    with pytest.raises(OidcConfigError) as refused:
        OidcSettings.from_environ({**BASE, **change})
    assert str(refused.value) == message


def test_a_jwt_is_told_from_a_static_key_by_its_shape() -> None:
    assert looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln")
    assert not looks_like_jwt("sk-static-key-5521")
    assert not looks_like_jwt("a.b")
