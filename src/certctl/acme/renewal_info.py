"""ACME Renewal Information (RFC 9773): when the CA wants a certificate renewed."""

from __future__ import annotations

from datetime import datetime

import requests
from acme import messages
from cryptography import x509

from certctl.acme.connection import AcmeConnection, as_utc, json_body
from certctl.acme.network import retry_after
from certctl.errors import AcmeError


class RenewalInfoCalls(AcmeConnection):
    """The suggested renewal window of a certificate."""

    def has_renewal_info(self) -> bool:
        """True when the CA offers ACME Renewal Information (RFC 9773)."""
        return "renewalInfo" in self.directory.to_partial_json()

    def renewal_info(self, cert_pem: bytes) -> tuple[datetime, datetime, datetime] | None:
        """The suggested window (start, end) and when to ask again, or None without ARI.

        None too for a certificate ARI cannot name (no Authority Key Identifier):
        it is renewed by the lifetime rule, which is not an error.
        """
        if not self.has_renewal_info():
            return None
        cert_id = ari_cert_id(x509.load_pem_x509_certificate(cert_pem))
        if cert_id is None:
            return None
        url = self.directory["renewalInfo"].rstrip("/") + "/" + cert_id
        net = self._client.net if self._client else self._network(None)

        def fetch() -> requests.Response:
            response: requests.Response = net.get(url, content_type="application/json")
            return response

        response = self.call("fetch renewal information", fetch)
        info = self.call(
            "read renewal information", lambda: messages.RenewalInfo.from_json(json_body(response))
        )
        window = info.suggested_window
        # RFC 9773 §4.3: Retry-After says when to poll again (default: 6 hours).
        retry_at = retry_after(response, 6 * 3600)
        start, end = as_utc(window.start), as_utc(window.end)
        if start is None or end is None or end < start:
            raise AcmeError("the CA sent an invalid renewal window")
        return start, end, retry_at


def ari_cert_id(cert: x509.Certificate) -> str | None:
    """RFC 9773 §4.1 certificate identifier: base64url(AKI keyIdentifier).base64url(serial).

    None when the certificate has no Authority Key Identifier with a key identifier:
    ARI cannot name it (RFC 9773 §4.1 requires one), so it is simply not used.
    """
    import base64

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    if aki.key_identifier is None:
        return None
    serial = cert.serial_number
    serial_bytes = serial.to_bytes((serial.bit_length() + 8) // 8, "big")  # DER: sign bit room
    return f"{b64(aki.key_identifier)}.{b64(serial_bytes)}"
