"""The only code that speaks ACME: one session per CA, its errors turned into ours.

AcmeSession puts together the connection (connection.py), orders (orders.py),
accounts (accounts.py) and renewal information (renewal_info.py); the network
layer with its nonce and Retry-After handling is network.py.
"""

from __future__ import annotations

from certctl.acme.accounts import AccountCalls
from certctl.acme.connection import Backoff, jwk_for
from certctl.acme.network import BAD_NONCE_RETRIES, MAX_RESPONSE_BYTES, RateLimited, retry_after
from certctl.acme.orders import OrderCalls, default_order_deadline
from certctl.acme.renewal_info import RenewalInfoCalls, ari_cert_id

# Public names, with the network ones that callers and tests import from here.
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


class AcmeSession(OrderCalls, AccountCalls, RenewalInfoCalls):
    """A connection to one CA directory, with or without an account."""
