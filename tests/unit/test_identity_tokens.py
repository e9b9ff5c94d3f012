"""What makes the API believe an identity provider's ID token (attendance.services.identity):
real keys and signatures, the provider's documents served by a function instead of over HTTP
(tests/integration/test_identity_login.py has a real provider)."""

from __future__ import annotations

import time

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from attendance.config.settings import OidcProvider, Settings
from attendance.services.identity import (
    IdentityProviders,
    IdentityRefused,
    ProviderUnavailable,
    UnknownProvider,
)

ISSUER = "https://idp.example.org"
METADATA = f"{ISSUER}/.well-known/openid-configuration"
JWKS = f"{ISSUER}/jwks"
CLIENT = "attendance-app"


class Provider:
    """A provider's discovery document and keys, and the tokens it signs."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "one"})
        self.fetches: list[str] = []
        self.down = False

    def fetch(self, url: str) -> dict:
        self.fetches.append(url)
        if self.down:
            raise requests.ConnectionError("down")
        if url == METADATA:
            return {"issuer": ISSUER, "jwks_uri": JWKS}
        if url == JWKS:
            return KeySet([self.key]).as_dict(private=False)
        raise AssertionError(url)

    def token(self, key=None, alg: str = "RS256", **claims) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": CLIENT,
            "sub": "12345",
            "iat": now,
            "exp": now + 600,
            "email": "Ms.Smith@School.example",
            "email_verified": True,
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        signer = key or self.key
        return jwt.encode({"alg": alg, "kid": signer.kid or "one"}, body, signer)


@pytest.fixture
def idp() -> Provider:
    return Provider()


@pytest.fixture
def providers(idp: Provider) -> IdentityProviders:
    config = {"school": OidcProvider(server_metadata_url=METADATA, client_id=CLIENT)}
    return IdentityProviders(config, fetch=idp.fetch)


def test_a_token_signed_by_the_provider_for_this_app_names_its_verified_email(idp, providers):
    identity = providers.verify("school", idp.token())
    assert (identity.provider, identity.subject, identity.email) == (
        "school",
        "12345",
        "ms.smith@school.example",
    )
    providers.verify("school", idp.token())
    assert idp.fetches == [METADATA, JWKS]  # fetched once, then cached


@pytest.mark.parametrize(
    "claims, words",
    [
        ({"aud": "another-app"}, "aud"),
        ({"iss": "https://evil.example"}, "iss"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
        ({"email": None}, "no email"),
        ({"email": "not an address"}, "no email"),
        ({"email_verified": False}, "not verified"),
    ],
)
def test_a_token_with_wrong_claims_is_refused(idp, providers, claims, words):
    with pytest.raises(IdentityRefused) as refused:
        providers.verify("school", idp.token(**claims))
    assert refused.value.status == 401
    assert words in refused.value.message


def test_a_token_signed_by_another_key_or_with_a_shared_secret_or_none_is_refused(idp, providers):
    stranger = RSAKey.generate_key(2048, parameters={"kid": "one"})
    forged = [
        idp.token(key=stranger),
        idp.token(key=OctKey.import_key("s" * 32), alg="HS256"),
    ]
    good = idp.token()
    header, body, _ = good.split(".")
    forged.append(f"{header}.{body}.")  # no signature
    tampered_body = jwt.encode({"alg": "RS256", "kid": "one"}, {"sub": "x"}, idp.key).split(".")[1]
    forged.append(f"{header}.{tampered_body}.{good.split('.')[2]}")  # another body, same signature
    forged.append("not a token")
    for token in forged:
        with pytest.raises(IdentityRefused):
            providers.verify("school", token)


def test_keys_rotated_by_the_provider_are_fetched_again_but_not_on_every_bad_kid(idp):
    clock = [0.0]
    config = {"school": OidcProvider(server_metadata_url=METADATA, client_id=CLIENT)}
    providers = IdentityProviders(config, fetch=idp.fetch, clock=lambda: clock[0])
    providers.verify("school", idp.token())
    old_key, idp.key = idp.key, RSAKey.generate_key(2048, parameters={"kid": "two"})
    with pytest.raises(IdentityRefused):  # within a minute of a fetch: not fetched again
        providers.verify("school", idp.token())
    assert idp.fetches.count(JWKS) == 1
    clock[0] += 120
    providers.verify("school", idp.token())  # an unknown kid: the keys are fetched at once
    assert idp.fetches.count(JWKS) == 2
    with pytest.raises(IdentityRefused):  # the retired key no longer counts
        providers.verify("school", idp.token(key=old_key))


def test_an_unknown_provider_and_an_unreachable_one_say_so(idp, providers):
    with pytest.raises(UnknownProvider) as unknown:
        providers.verify("elsewhere", idp.token())
    assert unknown.value.status == 401 and "school" in unknown.value.message
    idp.down = True
    with pytest.raises(ProviderUnavailable) as down:
        providers.verify("school", idp.token())
    assert down.value.status == 503


def test_a_provider_down_after_a_first_login_still_lets_people_in(idp):
    clock = [0.0]
    config = {"school": OidcProvider(server_metadata_url=METADATA, client_id=CLIENT)}
    providers = IdentityProviders(config, fetch=idp.fetch, clock=lambda: clock[0])
    providers.verify("school", idp.token())
    idp.down = True
    clock[0] += 2 * 3600  # stale: fetched again, which fails, and the keys it had still hold
    assert providers.verify("school", idp.token()).subject == "12345"


@pytest.mark.parametrize(
    "url",
    ["http://idp.example.org/.well-known/openid-configuration", "ftp://x/y", "not a url"],
)
def test_a_provider_url_must_be_https_except_on_loopback(url):
    with pytest.raises(ValueError):
        OidcProvider(server_metadata_url=url, client_id=CLIENT)
    OidcProvider(server_metadata_url="http://127.0.0.1:9400/x", client_id=CLIENT)


def test_providers_come_from_the_environment_as_json(monkeypatch):
    monkeypatch.setenv(
        "ATTENDANCE_OIDC_PROVIDERS",
        f'{{"google": {{"server_metadata_url": "{METADATA}", "client_id": "{CLIENT}"}}}}',
    )
    assert Settings(_env_file=None).oidc_providers["google"].client_id == CLIENT
    monkeypatch.setenv(
        "ATTENDANCE_OIDC_PROVIDERS",
        f'{{"Bad_Name": {{"server_metadata_url": "{METADATA}", "client_id": "{CLIENT}"}}}}',
    )
    with pytest.raises(ValueError, match="identity provider's name"):
        Settings(_env_file=None)
