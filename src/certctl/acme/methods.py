"""Challenge types the `acme` library no longer ships, registered with its JSON types.

RFC 8737 (TLS-ALPN-01): the answer is the same key authorization as HTTP-01's
(RFC 8555 §8.1); what is published is a certificate carrying SHA-256 of it
(challenges/tlsalpn.py builds and serves it). The response to the CA is `{}`.
"""

from __future__ import annotations

from typing import Any

from acme import challenges
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
