"""Orders (RFC 8555 §7.4): place, pick challenges, answer, wait, finalize, download."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import requests
from acme import challenges, messages
from cryptography import x509
from josepy import json_util
from josepy.jwk import JWK

from certctl.acme.connection import (
    AcmeConnection,
    Backoff,
    as_utc,
    json_body,
    jwk_for,
    status_name,
)
from certctl.acme.methods import DNSPERSIST01, TLSALPN01
from certctl.acme.network import MAX_RESPONSE_BYTES, problem_text
from certctl.errors import AcmeError, BadInput, NotYet
from certctl.models import Challenge, OrderState
from certctl.policy.persist import persist_value

log = logging.getLogger(__name__)


_CHALLENGE_CLASS: dict[str, type[challenges.Challenge]] = {
    "dns-persist": DNSPERSIST01,
    "http": challenges.HTTP01,
    "dns": challenges.DNS01,
    "tls-alpn": TLSALPN01,
}


class _NewOrder(messages.NewOrder):
    """newOrder payload with ARI's `replaces` (RFC 9773 §5)."""

    replaces: str | None = json_util.field("replaces", omitempty=True)


class OrderCalls(AcmeConnection):
    """The order state machine, one protocol step per method."""

    def new_order(
        self,
        domains: list[str],
        challenge_type: str,
        *,
        profile: str | None = None,
        replaces: str | None = None,
    ) -> OrderState:
        """Place an order (RFC 8555 §7.4) and pick each authorization's challenge."""
        identifiers = [messages.Identifier(typ=_identifier_type(d), value=d) for d in domains]
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
        body = self.call("read the order", lambda: messages.Order.from_json(json_body(response)))
        order = OrderState(
            url=response.headers["Location"],
            status=status_name(body.status),
            finalize_url=body.finalize,
            expires=as_utc(body.expires),
            profile=profile,
        )
        for authz_url in body.authorizations:
            order.challenges.append(self._pick_challenge(authz_url, challenge_type, domains))
        return order

    def _authorization(self, authz_url: str) -> messages.Authorization:
        response = self.call("fetch the authorization", lambda: self._get(authz_url))
        authz: messages.Authorization = self.call(
            "read the authorization", lambda: _authorization_of(json_body(response))
        )
        return authz

    def _pick_challenge(self, authz_url: str, challenge_type: str, domains: list[str]) -> Challenge:
        authz = self._authorization(authz_url)
        domain = _ordered_name(authz, domains)
        wanted = _CHALLENGE_CLASS[challenge_type]
        for challb in authz.challenges:
            if isinstance(challb.chall, DNSPERSIST01) and wanted is DNSPERSIST01:
                return self._persist_challenge(authz_url, authz, challb, domain, domains)
            if isinstance(challb.chall, wanted):
                assert isinstance(challb.chall, challenges.KeyAuthorizationChallenge)
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
                    status=status_name(authz.status),
                )
        offered = ", ".join(_type_of(c.chall) for c in authz.challenges) or "none"
        raise AcmeError(
            f"the CA offers no {wanted.typ} challenge for {domain} (offered: {offered})"
        )

    def _persist_challenge(
        self,
        authz_url: str,
        authz: messages.Authorization,
        challb: messages.ChallengeBody,
        domain: str,
        domains: list[str],
    ) -> Challenge:
        """dns-persist-01: the record binding the name to the CA's issuer and this account."""
        issuers = list(challb.chall.issuer_domain_names or [])
        if not issuers:
            raise AcmeError(f"the CA's dns-persist-01 challenge for {domain} names no issuer")
        assert self.account_uri is not None
        base = domain.removeprefix("*.")
        wildcard = f"*.{base}" in domains  # one record covers the apex and its wildcard
        return Challenge(
            domain=domain,
            authz_url=authz_url,
            url=challb.uri,
            type=challb.chall.typ,
            token="",
            validation=persist_value(str(issuers[0]).lower(), self.account_uri, wildcard),
            status=status_name(authz.status),
        )

    def refresh_validations(self, todo: list[Challenge]) -> list[tuple[Challenge, str]]:
        """Derive each value to publish from the account key now in use (after a rollover).

        Returns the challenges whose value changed, each with the value stored before.
        """
        assert self._jwk is not None
        changed = []
        for challenge in todo:
            if challenge.type == "dns-persist-01":
                continue  # bound to the account URL, which a key rollover keeps
            current = challenge_validation(challenge.type, challenge.token, self._jwk)
            if current != challenge.validation:
                changed.append((challenge, challenge.validation))
                challenge.validation = current
        return changed

    def refresh_challenge(self, challenge: Challenge) -> tuple[str, str | None]:
        """The authorization's status and, when invalid, the CA's error detail."""
        authz = self._authorization(challenge.authz_url)
        detail = None
        for challb in authz.challenges:
            if challb.uri == challenge.url and challb.error is not None:
                detail = problem_text(challb.error)
        return status_name(authz.status), detail

    def answer(self, challenge: Challenge) -> None:
        """Tell the CA the challenge is ready (RFC 8555 §7.5.1)."""
        authz = self._authorization(challenge.authz_url)
        _ordered_name(authz, [challenge.domain])  # still the authorization it was
        for challb in authz.challenges:
            if challb.uri == challenge.url:
                if status_name(challb.status) != "pending":
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
                    "the CA has not finished validating " + ", ".join(c.domain for c in pending)
                )
            if on_poll:
                on_poll(", ".join(c.domain for c in pending))
            self.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))
        return results

    def fetch_order(self, order: OrderState) -> messages.Order:
        """The order's current state at the CA."""
        response = self.call("fetch the order", lambda: self._get(order.url))
        body: messages.Order = self.call(
            "read the order", lambda: messages.Order.from_json(json_body(response))
        )
        return body

    def finalize(self, order: OrderState, csr_pem: bytes, deadline: float) -> str:
        """Finalize (RFC 8555 §7.4) and download the certificate; returns the PEM chain."""
        body = self.fetch_order(order)
        status = status_name(body.status)
        if status == "ready":
            csr = x509.load_pem_x509_csr(csr_pem)
            self.call(
                "finalize the order",
                lambda: self.acme._post(order.finalize_url, messages.CertificateRequest(csr=csr)),
            )
            body = self.fetch_order(order)
            status = status_name(body.status)
        delays = Backoff().delays()
        while status == "processing":
            # RFC 8555 §7.1.6: "processing" — poll again (after Retry-After, within deadline).
            if time.monotonic() >= deadline:
                raise NotYet("the CA is still processing the order")
            self.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))
            body = self.fetch_order(order)
            status = status_name(body.status)
        order.status = status
        if status == "valid" and body.certificate:
            order.certificate_url = body.certificate
            return self.download(body.certificate)
        if status == "invalid":
            detail = problem_text(body.error) if body.error else "no detail given"
            raise AcmeError(f"the CA refused to issue the certificate: {detail}")
        if status == "pending":
            raise NotYet("the order's authorizations are not valid yet")
        raise AcmeError(f"unexpected order status {status!r} at the CA")

    def download(self, url: str) -> str:
        """Download the certificate chain (RFC 8555 §7.4.2)."""
        response = self.call("download the certificate", lambda: self._get(url))
        text = str(response.text)
        if len(text) > MAX_RESPONSE_BYTES or "-----BEGIN CERTIFICATE-----" not in text:
            raise AcmeError("the CA returned something that is not a certificate chain")
        return text


def challenge_validation(challenge_type: str, token: str, account_key: bytes | JWK) -> str:
    """What to publish for a challenge, from its token and the account key (PEM or JWK).

    RFC 8555 §8.1: key authorization = token "." base64url(JWK thumbprint of the account
    key); http-01 (§8.3) serves it as is, dns-01 (§8.4) publishes base64url(SHA-256(it)),
    tls-alpn-01 (RFC 8737 §3) keeps it (its certificate carries SHA-256(it)).
    """
    jwk = jwk_for(account_key)[0] if isinstance(account_key, bytes) else account_key
    kind = {"dns-01": challenges.DNS01, "tls-alpn-01": TLSALPN01}.get(
        challenge_type, challenges.HTTP01
    )
    chall = kind(token=json_util.decode_b64jose(token))
    value: str = chall.validation(jwk)
    return value


def _check_token(token: Any) -> None:
    """RFC 8555 §8.3: a token is base64url; anything else is hostile (e.g. '../')."""
    import re

    if not isinstance(token, str) or not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", token):
        raise AcmeError("the CA sent a challenge token that is not base64url; refusing to use it")


def _ordered_name(authz: messages.Authorization, domains: list[str]) -> str:
    """The name an authorization is for (RFC 8555 §7.1.4), refused unless it was ordered.

    The identifier's value and wildcard flag come from the CA and end up in TXT record
    names, HTTP URLs and hook environments: only a name of the order may.
    """
    identifier = authz.identifier
    value = identifier.value if isinstance(identifier.value, str) else repr(identifier.value)
    domain = ("*." if authz.wildcard else "") + value
    if identifier.typ != _identifier_type(domain) or domain.lower() not in domains:
        from certctl.pki.certinfo import clean

        raise AcmeError(
            f"the CA sent an authorization for {clean(domain)!r}, a name not in the order"
            f" ({', '.join(domains)}); refusing it"
        )
    return domain.lower()


def _type_of(chall: challenges.Challenge) -> str:
    """A challenge's type, also for one the acme library does not know."""
    if isinstance(chall, challenges.UnrecognizedChallenge):
        return str(chall.jobj.get("type", "unknown"))
    return str(chall.typ)


def _identifier_type(name: str) -> messages.IdentifierType:
    """RFC 8738 §3: an IP address is an "ip" identifier; any other name is "dns"."""
    from certctl.policy.names import ip_address_of

    return messages.IDENTIFIER_IP if ip_address_of(name) is not None else messages.IDENTIFIER_FQDN


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
