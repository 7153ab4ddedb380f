"""Challenge types the `acme` library no longer ships, registered with its JSON types.

RFC 8737 (TLS-ALPN-01): the answer is the same key authorization as HTTP-01's
(RFC 8555 §8.1); what is published is a certificate carrying SHA-256 of it
(challenges/tlsalpn.py builds and serves it). The response to the CA is `{}`.
"""

from __future__ import annotations

from typing import Any

from acme import challenges
from josepy import json_util
from josepy.jwk import JWK

TLS_ALPN_01 = "tls-alpn-01"


@challenges.ChallengeResponse.register
class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """RFC 8737 §3: the client's response is an empty JSON object (keyAuthorization dropped)."""

    typ = TLS_ALPN_01


@challenges.Challenge.register
class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """RFC 8737 §3: a token; the validation certificate is built from its key authorization."""

    response_cls = TLSALPN01Response
    typ = TLS_ALPN_01

    def validation(self, account_key: JWK, **kwargs: Any) -> str:
        """The key authorization; the challenge certificate carries its SHA-256 digest."""
        return self.key_authorization(account_key)


DNS_PERSIST_01 = "dns-persist-01"


@challenges.ChallengeResponse.register
class DNSPERSIST01Response(challenges.ChallengeResponse):
    """draft-ietf-acme-dns-persist §4: the response is an empty JSON object."""

    typ = DNS_PERSIST_01

    def __bool__(self) -> bool:
        """Non-empty: josepy sends a falsy object as an empty POST-as-GET, which answers nothing."""
        return True


@challenges.Challenge.register
class DNSPERSIST01(challenges.Challenge):
    """draft-ietf-acme-dns-persist §4: no token; the CA names the issuer domain names it accepts."""

    typ = DNS_PERSIST_01
    issuer_domain_names: list[str] = json_util.field("issuer-domain-names", omitempty=True)

    def response(self, account_key: JWK) -> DNSPERSIST01Response:
        """The (empty) answer: the record is already published."""
        return DNSPERSIST01Response()
