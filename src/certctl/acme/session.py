"""The only module that speaks ACME: wraps acme.ClientV2 and turns its errors into ours.

Heavy imports (acme, josepy, requests) live here and in acmenet, its network layer,
so that commands which never talk to a CA start fast.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import josepy
import requests
from acme import challenges, client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy import json_util
from josepy.jwa import ES256, ES384, ES512, RS256, JWASignature
from josepy.jwk import JWK, JWKEC, JWKRSA

from certctl import __version__
from certctl.acme.network import (
    BAD_NONCE_RETRIES,
    MAX_RESPONSE_BYTES,
    AcmeNetwork,
    RateLimited,
    describe,
    problem_text,
    retry_after,
)
from certctl.errors import AcmeError, BadInput, NotYet
from certctl.models import Challenge, OrderState

# Public names, with the acmenet ones that callers and tests import from here.
__all__ = [
    "BAD_NONCE_RETRIES",
    "MAX_RESPONSE_BYTES",
    "AcmeSession",
    "Backoff",
    "RateLimited",
    "ari_cert_id",
    "default_order_deadline",
    "jwk_for",
    "retry_after",
]

log = logging.getLogger(__name__)


def jwk_for(key_pem: bytes) -> tuple[JWK, JWASignature]:
    """The JWK and matching JWS algorithm for an account key."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {256: ES256, 384: ES384, 521: ES512}[key.curve.key_size]
        return JWKEC(key=key), alg
    if isinstance(key, rsa.RSAPrivateKey):
        return JWKRSA(key=key), RS256
    raise BadInput("unsupported account key type: use ECDSA or RSA")


class _KeyChange(json_util.JSONObjectWithFields):
    """RFC 8555 §7.3.5 keyChange payload (signed by the new key)."""

    account: str = json_util.field("account")
    old_key: JWK = json_util.field("oldKey", decoder=JWK.from_json)


class _NewOrder(messages.NewOrder):
    """newOrder payload with ARI's `replaces` (RFC 9773 §5)."""

    replaces: str | None = json_util.field("replaces", omitempty=True)


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


class AcmeSession:
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

    # ---- plumbing ---------------------------------------------------------

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

    # ---- accounts ---------------------------------------------------------

    def login(self, key_pem: bytes, account_uri: str) -> None:
        """Use an existing account."""
        net = self._network(key_pem)
        net.account = messages.RegistrationResource(uri=account_uri, body=messages.Registration())
        self._client = client.ClientV2(self.directory, net)
        self.account_uri = account_uri

    def register(
        self,
        key_pem: bytes,
        *,
        email: str | None,
        eab_kid: str | None = None,
        eab_hmac_key: str | None = None,
    ) -> str:
        """Create (or find, for a known key) the account; returns its URI."""
        net = self._network(key_pem)
        acme = client.ClientV2(self.directory, net)
        eab = None
        if eab_kid:
            if eab_hmac_key is None:  # accounts.load_eab never lets this through
                raise BadInput("--eab-kid needs the HMAC key: add --eab-hmac-key-env or -file")
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=self._jwk.public_key() if self._jwk else None,
                kid=eab_kid,
                hmac_key=eab_hmac_key,
                directory=self.directory,
            )
        elif self.external_account_required():
            raise BadInput(
                "this CA requires External Account Binding: run 'certctl account register'"
                " with --eab-kid and --eab-hmac-key-env/--eab-hmac-key-file"
            )
        registration = messages.NewRegistration.from_data(
            email=email, terms_of_service_agreed=True, external_account_binding=eab
        )
        try:
            regr = self.call("create the ACME account", lambda: acme.new_account(registration))
            uri = str(regr.uri)
        except AcmeError as e:
            if isinstance(e.__cause__, errors.ConflictError):
                uri = str(e.__cause__.args[0])  # the key already has an account: reuse it
            else:
                raise
        net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
        self._client = acme
        self.account_uri = uri
        return uri

    # ---- orders -----------------------------------------------------------

    def new_order(
        self,
        domains: list[str],
        challenge_type: str,
        *,
        profile: str | None = None,
        replaces: str | None = None,
    ) -> OrderState:
        """Place an order (RFC 8555 §7.4) and pick each authorization's challenge."""
        identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=d) for d in domains]
        if profile and profile not in self.profiles():
            offered = ", ".join(sorted(self.profiles())) or "none"
            raise BadInput(f"the CA does not offer profile {profile!r} (it offers: {offered})")
        payload = _NewOrder(identifiers=identifiers, profile=profile, replaces=replaces)

        def place() -> requests.Response:
            response: requests.Response = self.acme._post(self.directory["newOrder"], payload)
            return response

        try:
            response = self.call("place the order", place)
        except AcmeError:
            if replaces is None:
                raise
            # RFC 9773 §5: a CA may refuse `replaces` (e.g. already replaced): retry without.
            log.info("CA refused 'replaces'; ordering without it")
            return self.new_order(domains, challenge_type, profile=profile)
        body = self.call("read the order", lambda: messages.Order.from_json(_json(response)))
        order = OrderState(
            url=response.headers["Location"],
            status=_status(body.status),
            finalize_url=body.finalize,
            expires=_utc(body.expires),
            profile=profile,
        )
        for authz_url in body.authorizations:
            order.challenges.append(self._pick_challenge(authz_url, challenge_type))
        return order

    def _authorization(self, authz_url: str) -> messages.Authorization:
        response = self.call("fetch the authorization", lambda: self._get(authz_url))
        authz: messages.Authorization = self.call(
            "read the authorization", lambda: _authorization_of(_json(response))
        )
        return authz

    def _pick_challenge(self, authz_url: str, challenge_type: str) -> Challenge:
        authz = self._authorization(authz_url)
        domain = str(authz.identifier.value)
        if authz.wildcard:
            domain = "*." + domain
        wanted = challenges.HTTP01 if challenge_type == "http" else challenges.DNS01
        for challb in authz.challenges:
            if isinstance(challb.chall, wanted):
                token = challb.chall.encode("token")
                _check_token(token)
                assert self._jwk is not None
                return Challenge(
                    domain=domain,
                    authz_url=authz_url,
                    url=challb.uri,
                    type=challb.chall.typ,
                    token=token,
                    validation=challb.chall.validation(self._jwk),
                    status=_status(authz.status),
                )
        offered = ", ".join(c.chall.typ for c in authz.challenges) or "none"
        raise AcmeError(
            f"the CA offers no {wanted.typ} challenge for {domain} (offered: {offered})"
        )

    def refresh_challenge(self, challenge: Challenge) -> tuple[str, str | None]:
        """The authorization's status and, when invalid, the CA's error detail."""
        authz = self._authorization(challenge.authz_url)
        detail = None
        for challb in authz.challenges:
            if challb.uri == challenge.url and challb.error is not None:
                detail = problem_text(challb.error)
        return _status(authz.status), detail

    def answer(self, challenge: Challenge) -> None:
        """Tell the CA the challenge is ready (RFC 8555 §7.5.1)."""
        authz = self._authorization(challenge.authz_url)
        for challb in authz.challenges:
            if challb.uri == challenge.url:
                if _status(challb.status) != "pending":
                    return  # already processing or done
                assert self._jwk is not None
                response = challb.chall.response(self._jwk)
                self.call(
                    f"answer the challenge for {challenge.domain}",
                    functools.partial(self.acme.answer_challenge, challb, response),
                )
                return
        raise AcmeError(f"the challenge for {challenge.domain} vanished from its authorization")

    def wait_authorizations(
        self, order: OrderState, deadline: float, on_poll: Callable[[str], None] | None = None
    ) -> dict[str, str | None]:
        """Poll until no authorization is pending; returns domain → error detail (None if ok)."""
        results: dict[str, str | None] = {}
        delays = Backoff().delays()
        pending = list(order.challenges)
        while pending:
            still = []
            for challenge in pending:
                status, detail = self.refresh_challenge(challenge)
                challenge.status = status
                if status in ("pending", "processing"):
                    still.append(challenge)
                elif status == "valid":
                    results[challenge.domain] = None
                else:
                    results[challenge.domain] = detail or f"authorization {status}"
            pending = still
            if not pending:
                break
            if time.monotonic() >= deadline:
                # RFC 8555 §7.5.1: still pending/processing is not a failure: retry later
                raise NotYet(
                    "the CA has not finished validating "
                    + ", ".join(c.domain for c in pending)
                    + ": run 'certctl verify' again later"
                )
            if on_poll:
                on_poll(", ".join(c.domain for c in pending))
            self.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))
        return results

    def fetch_order(self, order: OrderState) -> messages.Order:
        """The order's current state at the CA."""
        response = self.call("fetch the order", lambda: self._get(order.url))
        body: messages.Order = self.call(
            "read the order", lambda: messages.Order.from_json(_json(response))
        )
        return body

    def finalize(self, order: OrderState, csr_pem: bytes, deadline: float) -> str:
        """Finalize (RFC 8555 §7.4) and download the certificate; returns the PEM chain."""
        body = self.fetch_order(order)
        status = _status(body.status)
        if status == "ready":
            csr = x509.load_pem_x509_csr(csr_pem)
            self.call(
                "finalize the order",
                lambda: self.acme._post(order.finalize_url, messages.CertificateRequest(csr=csr)),
            )
            body = self.fetch_order(order)
            status = _status(body.status)
        delays = Backoff().delays()
        while status == "processing":
            # RFC 8555 §7.1.6: "processing" — poll again (after Retry-After, within deadline).
            if time.monotonic() >= deadline:
                raise NotYet(
                    "the CA is still processing the order: run 'certctl issue' again later"
                )
            self.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))
            body = self.fetch_order(order)
            status = _status(body.status)
        order.status = status
        if status == "valid" and body.certificate:
            order.certificate_url = body.certificate
            return self.download(body.certificate)
        if status == "invalid":
            detail = problem_text(body.error) if body.error else "no detail given"
            raise AcmeError(f"the CA refused to issue the certificate: {detail}")
        if status == "pending":
            raise NotYet("the order's authorizations are not valid yet: run 'certctl verify' first")
        raise AcmeError(f"unexpected order status {status!r} at the CA")

    def download(self, url: str) -> str:
        """Download the certificate chain (RFC 8555 §7.4.2)."""
        response = self.call("download the certificate", lambda: self._get(url))
        text = str(response.text)
        if len(text) > MAX_RESPONSE_BYTES or "-----BEGIN CERTIFICATE-----" not in text:
            raise AcmeError("the CA returned something that is not a certificate chain")
        return text

    def has_renewal_info(self) -> bool:
        """True when the CA offers ACME Renewal Information (RFC 9773)."""
        return "renewalInfo" in self.directory.to_partial_json()

    def renewal_info(self, cert_pem: bytes) -> tuple[datetime, datetime, datetime] | None:
        """The suggested window (start, end) and when to ask again, or None without ARI."""
        if not self.has_renewal_info():
            return None
        cert = x509.load_pem_x509_certificate(cert_pem)
        url = self.directory["renewalInfo"].rstrip("/") + "/" + ari_cert_id(cert)
        net = self._client.net if self._client else self._network(None)

        def fetch() -> requests.Response:
            response: requests.Response = net.get(url, content_type="application/json")
            return response

        response = self.call("fetch renewal information", fetch)
        info = self.call(
            "read renewal information", lambda: messages.RenewalInfo.from_json(_json(response))
        )
        window = info.suggested_window
        # RFC 9773 §4.3: Retry-After says when to poll again (default: 6 hours).
        retry_at = retry_after(response, 6 * 3600)
        start, end = _utc(window.start), _utc(window.end)
        if start is None or end is None or end < start:
            raise AcmeError("the CA sent an invalid renewal window")
        return start, end, retry_at

    def revoke(self, cert_pem: bytes, reason: int, cert_key_pem: bytes | None = None) -> bool:
        """Revoke (RFC 8555 §7.6); False when it already was. With `cert_key_pem` the
        request is signed by the certificate's own key (jwk, no account kid)."""
        cert = x509.load_pem_x509_certificate(cert_pem)
        acme = (
            self.acme
            if cert_key_pem is None
            else client.ClientV2(self.directory, self._network(cert_key_pem, remember=False))
        )
        try:
            self.call("revoke the certificate", lambda: acme.revoke(cert, reason))
        except AcmeError as e:
            if _problem_code(e) == "alreadyRevoked":
                return False
            raise
        return True

    # ---- account management (RFC 8555 §7.3) ---------------------------------

    def account_details(self) -> messages.Registration:
        """The account object as the CA has it (POST-as-GET on the account URL)."""
        assert self.account_uri is not None
        uri = self.account_uri
        response = self.call("fetch the account", lambda: self._get(uri))
        details: messages.Registration = self.call(
            "read the account", lambda: messages.Registration.from_json(_json(response))
        )
        return details

    def find_account(self, key_pem: bytes) -> str | None:
        """RFC 8555 §7.3.1 onlyReturnExisting: the account URL bound to a key, or None."""
        acme = client.ClientV2(self.directory, self._network(key_pem, remember=False))
        query = messages.NewRegistration(only_return_existing=True)
        try:
            response = self.call(
                "look up the account", lambda: acme._post(acme.directory["newAccount"], query)
            )
        except AcmeError as e:
            if _problem_code(e) == "accountDoesNotExist":
                return None
            raise
        location = response.headers.get("Location")
        return str(location) if location else None

    def deactivate(self) -> str:
        """RFC 8555 §7.3.6: deactivate this account; returns the status the CA reports."""
        assert self.account_uri is not None
        regr = messages.RegistrationResource(uri=self.account_uri, body=messages.Registration())
        updated = self.call(
            "deactivate the account", lambda: self.acme.deactivate_registration(regr)
        )
        return _status(updated.body.status) if updated.body.status else "deactivated"

    def change_key(self, new_key_pem: bytes) -> None:
        """RFC 8555 §7.3.5 key rollover: inner JWS by the new key, outer by the current one."""
        from acme import jws

        assert self.account_uri is not None and self._jwk is not None
        url = self.directory["keyChange"]
        new_jwk, new_alg = jwk_for(new_key_pem)
        payload = _KeyChange(account=self.account_uri, old_key=self._jwk.public_key())
        inner = jws.JWS.sign(
            payload.json_dumps().encode(), key=new_jwk, alg=new_alg, nonce=None, url=url
        )
        self.call("roll over the account key", lambda: self.acme._post(url, inner))


def ari_cert_id(cert: x509.Certificate) -> str:
    """RFC 9773 §4.1 certificate identifier: base64url(AKI keyIdentifier).base64url(serial)."""
    import base64

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    if aki.key_identifier is None:
        raise AcmeError("the certificate has no authority key identifier; ARI cannot be used")
    serial = cert.serial_number
    serial_bytes = serial.to_bytes((serial.bit_length() + 8) // 8, "big")  # DER: sign bit room
    return f"{b64(aki.key_identifier)}.{b64(serial_bytes)}"


def _problem_code(error: AcmeError) -> str | None:
    """The ACME error code (RFC 8555 §6.7, e.g. "alreadyRevoked") behind an AcmeError."""
    cause = error.__cause__
    return str(cause.code) if isinstance(cause, messages.Error) and cause.code else None


def _status(value: Any) -> str:
    """A Status as its plain name ("pending", "valid", ...)."""
    return str(getattr(value, "name", value))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_token(token: Any) -> None:
    """RFC 8555 §8.3: a token is base64url; anything else is hostile (e.g. '../')."""
    import re

    if not isinstance(token, str) or not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", token):
        raise AcmeError("the CA sent a challenge token that is not base64url; refusing to use it")


def _json(response: requests.Response) -> Any:
    """The body as JSON, or an error naming what came instead (say, a proxy's HTML page)."""
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("Content-Type") or "no content type"
        raise errors.ClientError(
            f"HTTP {response.status_code} {response.reason} with a body that is not JSON ({kind})"
        ) from None


def _authorization_of(data: Any) -> messages.Authorization:
    """Parse an authorization (RFC 8555 §7.1.4), refusing hostile tokens first.

    The raw token is checked before josepy decodes it: josepy's lenient base64 would turn
    '../../../../etc/passwdAAAAAAAA' into a harmless-looking token the CA never sent.
    """
    challenges_json = data.get("challenges") if isinstance(data, dict) else None
    for challenge in challenges_json if isinstance(challenges_json, list) else []:
        if isinstance(challenge, dict) and "token" in challenge:
            _check_token(challenge["token"])
    authz: messages.Authorization = messages.Authorization.from_json(data)
    return authz


def default_order_deadline(seconds: float) -> float:
    """A monotonic deadline `seconds` from now."""
    return time.monotonic() + seconds
