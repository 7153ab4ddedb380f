"""A connection to one ACME CA (RFC 8555): directory, signing key, error mapping.

Heavy imports (acme, josepy, requests) live in acme/ only, so that commands which
never talk to a CA start fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import josepy
import requests
from acme import client, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.jwa import ES256, ES384, ES512, RS256, JWASignature
from josepy.jwk import JWK, JWKEC, JWKRSA

from certctl import __version__
from certctl.acme.network import AcmeNetwork, RateLimited, describe, problem_text
from certctl.errors import AcmeError, BadInput, NotYet


def jwk_for(key_pem: bytes) -> tuple[JWK, JWASignature]:
    """The JWK and matching JWS algorithm for an account key."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {256: ES256, 384: ES384, 521: ES512}[key.curve.key_size]
        return JWKEC(key=key), alg
    if isinstance(key, rsa.RSAPrivateKey):
        return JWKRSA(key=key), RS256
    raise BadInput("unsupported account key type: use ECDSA or RSA")


@dataclass
class Backoff:
    """Polling intervals that start fast and grow (no fixed one-second sleeps)."""

    first: float = 0.02
    factor: float = 2.0
    limit: float = 3.0

    def delays(self) -> Any:
        """Yield successive delays."""
        delay = self.first
        while True:
            yield delay
            delay = min(self.limit, delay * self.factor)


class AcmeConnection:
    """A connection to one CA directory, with or without an account."""

    def __init__(self, server: str, *, ca_bundle: str | None, timeout: float) -> None:
        self.server = server
        self._verify: bool | str = ca_bundle or True
        self._timeout = timeout
        self._directory: messages.Directory | None = None
        self._client: client.ClientV2 | None = None
        self.account_uri: str | None = None
        self._jwk: JWK | None = None
        self.sleep: Callable[[float], None] = time.sleep

    def _network(self, key_pem: bytes | None, *, remember: bool = True) -> AcmeNetwork:
        jwk, alg = jwk_for(key_pem) if key_pem else (None, ES256)
        if jwk is not None and remember:
            self._jwk = jwk
        return AcmeNetwork(
            key=jwk,
            alg=alg,
            verify=self._verify,
            user_agent=f"certctl/{__version__}",
            timeout=self._timeout,
        )

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one protocol step, mapping every library/network error to AcmeError."""
        try:
            return fn()
        except (RateLimited, AcmeError, NotYet):
            raise
        except messages.Error as e:
            raise AcmeError(f"{what}: the CA said: {problem_text(e)}") from e
        except errors.ValidationError as e:
            raise AcmeError(f"{what}: validation failed") from e
        except (
            errors.Error,
            josepy.errors.Error,
            requests.exceptions.RequestException,
            ValueError,
        ) as e:
            raise AcmeError(f"{what} at {self.server}: {describe(e)}") from e

    @property
    def directory(self) -> messages.Directory:
        """The CA's directory (RFC 8555 §7.1.1), fetched once."""
        if self._directory is None:
            net = self._network(None)
            self._directory = self.call(
                "fetch the CA directory", lambda: client.ClientV2.get_directory(self.server, net)
            )
        return self._directory

    @property
    def acme(self) -> client.ClientV2:
        """The logged-in client; call login() or register() first."""
        if self._client is None:
            raise AcmeError("internal: no ACME account loaded")
        return self._client

    def profiles(self) -> dict[str, str]:
        """Profiles the CA advertises (draft-ietf-acme-profiles), name → description."""
        meta = getattr(self.directory, "meta", None)
        found = getattr(meta, "profiles", None) if meta is not None else None
        return dict(found or {})

    def caa_identities(self) -> list[str]:
        """The CA's issuer domain names (RFC 8555 §7.1.1 caaIdentities), lower case."""
        meta = getattr(self.directory, "meta", None)
        found = getattr(meta, "caa_identities", None) if meta is not None else None
        return [str(name).lower().rstrip(".") for name in found or ()]

    def external_account_required(self) -> bool:
        """True when the CA requires External Account Binding."""
        meta = getattr(self.directory, "meta", None)
        return bool(getattr(meta, "external_account_required", False))

    def terms_of_service(self) -> str | None:
        """The CA's terms-of-service URL, if advertised."""
        meta = getattr(self.directory, "meta", None)
        tos = getattr(meta, "terms_of_service", None) if meta is not None else None
        return str(tos) if tos else None

    def _get(self, url: str) -> requests.Response:
        """POST-as-GET (RFC 8555 §6.3)."""
        response: requests.Response = self.acme.net.post(
            url, None, new_nonce_url=self.directory["newNonce"]
        )
        return response


def problem_code(error: AcmeError) -> str | None:
    """The ACME error code (RFC 8555 §6.7, e.g. "alreadyRevoked") behind an AcmeError."""
    cause = error.__cause__
    return str(cause.code) if isinstance(cause, messages.Error) and cause.code else None


def status_name(value: Any) -> str:
    """A Status as its plain name ("pending", "valid", ...)."""
    return str(getattr(value, "name", value))


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def json_body(response: requests.Response) -> Any:
    """The body as JSON, or an error naming what came instead (say, a proxy's HTML page)."""
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("Content-Type") or "no content type"
        raise errors.ClientError(
            f"HTTP {response.status_code} {response.reason} with a body that is not JSON ({kind})"
        ) from None
