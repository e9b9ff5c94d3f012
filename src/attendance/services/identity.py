"""Logins through a school's identity provider (OpenID Connect): the ID token, checked.

The app does the browser's part of OpenID Connect (Streamlit's st.login: the redirect, the code,
the nonce) and hands the API the ID token it was given. The API believes it only once its
signature verifies with the provider's published keys and its claims name the provider (iss),
this app (aud) and a time it is valid at (exp, iat); the person is then whoever the token's
email is, if the provider has verified it (attendance.services.accounts.log_in_with_identity).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import requests
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from attendance.config.settings import OidcProvider
from attendance.domain.errors import AppError

# Asymmetric signatures only: "none" and the HMAC family (whose key would be the client secret,
# which the API does not hold) are never accepted.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
# Clocks differ a little between the provider and the API.
LEEWAY_SECONDS = 60
# A provider's discovery document and keys are fetched again after this long; an unknown key id
# (the provider rotated its keys) fetches them at once, at most once per KEY_REFRESH_SECONDS.
CACHE_SECONDS = 3600.0
KEY_REFRESH_SECONDS = 60.0
FETCH_TIMEOUT_SECONDS = 10.0
MAX_TOKEN_LENGTH = 16_384


class UnknownProvider(AppError):
    # A login that names no provider this API trusts is refused as any other failed login.
    status = 401
    code = "login_failed"


class IdentityRefused(AppError):
    status = 401
    code = "login_failed"


class ProviderUnavailable(AppError):
    status = 503
    code = "identity_provider_unavailable"


@dataclass(frozen=True)
class Identity:
    provider: str
    subject: str
    email: str


def fetch_json(url: str) -> dict:
    response = requests.get(url, timeout=FETCH_TIMEOUT_SECONDS)
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return body


@dataclass
class _Cached:
    issuer: str
    keys: KeySet
    fetched_at: float


class IdentityProviders:
    """The configured providers, each with its discovery document and keys cached."""

    def __init__(
        self,
        providers: Mapping[str, OidcProvider],
        *,
        fetch: Callable[[str], dict] = fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._providers = dict(providers)
        self._fetch = fetch
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)

    def verify(self, provider: str, id_token: str) -> Identity:
        """Who ``id_token`` says the person is, once it is checked; IdentityRefused if it is
        not the provider's, not for this app, expired, or names no verified email."""
        config = self._providers.get(provider)
        if config is None:
            known = ", ".join(self.names) or "none is configured"
            raise UnknownProvider(f"no identity provider {provider!r} (known: {known})")
        if not id_token or len(id_token) > MAX_TOKEN_LENGTH:
            raise IdentityRefused("the identity provider's token is empty or too long")
        cached = self._provider(provider, config)
        try:
            try:
                token = jwt.decode(id_token, cached.keys, algorithms=ALGORITHMS)
            except InvalidKeyIdError:
                cached = self._provider(provider, config, refresh=True)
                token = jwt.decode(id_token, cached.keys, algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "value": cached.issuer},
                aud={"essential": True, "value": config.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
            ).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise IdentityRefused(
                f"the identity provider's token was refused ({_reason(exc)}): log in again"
            ) from None
        return Identity(provider, str(token.claims["sub"]), _verified_email(token.claims))

    def _provider(self, name: str, config: OidcProvider, *, refresh: bool = False) -> _Cached:
        with self._lock:
            cached = self._cache.get(name)
            now = self._clock()
            age = now - cached.fetched_at if cached else None
            if age is not None and age < (KEY_REFRESH_SECONDS if refresh else CACHE_SECONDS):
                return cached  # type: ignore[return-value]
            try:
                metadata = self._fetch(config.server_metadata_url)
                issuer, jwks_uri = metadata["issuer"], metadata["jwks_uri"]
                if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
                    raise ValueError("issuer and jwks_uri must be strings")
                keys = KeySet.import_key_set(self._fetch(jwks_uri))  # type: ignore[arg-type]
            except (requests.RequestException, KeyError, ValueError, JoseError) as exc:
                if cached is not None and not refresh:
                    return cached  # the provider is down: its keys of an hour ago still hold
                raise ProviderUnavailable(
                    f"the identity provider {name!r} could not be reached or answered "
                    f"nonsense ({type(exc).__name__}): try again, or log in with a password"
                ) from None
            self._cache[name] = _Cached(issuer, keys, now)
            return self._cache[name]


def _verified_email(claims: Mapping[str, object]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        raise IdentityRefused(
            "the identity provider sent no email address: it must share the email (scope "
            "'email'; on Microsoft Entra, the optional claim 'email')"
        )
    # Google and others say whether they checked the address. One that does not say (Entra)
    # vouches for its own directory's addresses, and the issuer check keeps that directory the
    # school's own (a tenant's discovery URL: /common's issuer is a template no token matches).
    if claims.get("email_verified") in (False, "false"):
        raise IdentityRefused(f"the identity provider has not verified {email!r}")
    return email.strip().lower()


def _reason(exc: Exception) -> str:
    return getattr(exc, "description", None) or getattr(exc, "error", None) or type(exc).__name__
