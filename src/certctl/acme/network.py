"""The network layer under the ACME client: bounded bodies, nonces, retries, Retry-After.

Everything here is about HTTP against the CA, not about the protocol's objects:
acme's ClientNetwork with size-bounded responses, badNonce and 429/503 retries
(RFC 8555 §6.5, §6.6), and the mapping of library errors to short descriptions.
Imported only by acme/, so commands that never talk to a CA start fast.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import josepy
import requests
from acme import client, errors, messages
from josepy.jwa import JWASignature
from josepy.jwk import JWK

from certctl.errors import NotYet

log = logging.getLogger(__name__)

BAD_NONCE_RETRIES = 20  # at Pebble's 50% rejection a POST fails 1 time in a million
MAX_RETRY_AFTER_WAIT = 20.0  # seconds we wait in-process for a 429/503 Retry-After
RETRY_AFTER_ATTEMPTS = 3  # short waits per request before giving up ("not yet", exit 3)
MAX_RESPONSE_BYTES = 1 << 20  # certificate chains, directories, orders: all far smaller
READ_RETRIES = 1  # a read (GET, POST-as-GET) that timed out or lost its connection: once more


def problem_text(error: messages.Error) -> str:
    """The CA's own words for a problem document, with subproblems."""
    text = error.detail or error.description or error.typ or "unknown error"
    if error.code:
        text = f"{text} ({error.code})"
    for sub in error.subproblems or ():
        ident = sub.identifier.value if sub.identifier is not None else ""
        text += f"; {ident}: {sub.detail or sub.code}"
    return text


class RateLimited(NotYet):
    """The CA asked us to come back later (429/503 with Retry-After)."""

    def __init__(self, message: str, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class ResponseTooLarge(errors.Error):
    """The CA sent more than MAX_RESPONSE_BYTES: refused unread (a broken or hostile CA)."""


def _read_bounded(response: requests.Response) -> bytes:
    """The body, refused once it exceeds MAX_RESPONSE_BYTES (as declared or as received)."""
    limit = f"{MAX_RESPONSE_BYTES // (1 << 20)} MiB"
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise ResponseTooLarge(f"the response is too large ({declared} bytes, over {limit})")
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ResponseTooLarge(f"the response is too large (over {limit})")
        chunks.append(chunk)
    return b"".join(chunks)


class AcmeNetwork(client.ClientNetwork):
    """ClientNetwork with bounded bodies, bounded badNonce retries and Retry-After handling."""

    last_response: requests.Response | None = None

    def __init__(
        self,
        *,
        key: JWK | None,
        alg: JWASignature,
        verify: bool | str,
        user_agent: str,
        timeout: float,
    ) -> None:
        """`verify` and `timeout` as requests takes them: a CA bundle path, float seconds.

        ClientNetwork declares them narrower (verify_ssl: bool, timeout: int) and only its
        _send_request reads them, which this class replaces: so they are kept here.
        """
        super().__init__(key=key, alg=alg, user_agent=user_agent)
        self.verify = verify
        self.timeout = timeout

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        """One request with the timeout, reading at most MAX_RESPONSE_BYTES of the body.

        Replaces acme's own, which reads the whole body (for its debug log) before
        anything can look at its size.
        """
        kwargs["verify"] = self.verify
        kwargs.setdefault("headers", {})
        kwargs["headers"].setdefault("User-Agent", self.user_agent)
        kwargs.setdefault("timeout", self.timeout)
        kwargs["stream"] = True
        self.last_response = None
        response: requests.Response = self.session.request(method, url, *args, **kwargs)
        self.last_response = response
        try:
            response._content = _read_bounded(response)
            # requests declares this flag, types-requests does not (unused without the stubs)
            response._content_consumed = True  # type: ignore[attr-defined,unused-ignore]
        finally:
            response.close()  # back to the pool when read in full, else the connection is dropped
        if "Accept" not in kwargs["headers"]:
            response.encoding = "utf-8"
        log.debug(
            "%s %s: HTTP %d, %d bytes", method, url, response.status_code, len(response._content)
        )
        return response

    def _keep_nonce(self) -> None:
        """RFC 8555 §6.5: an error response carries a fresh nonce; use it for the retry."""
        if self.last_response is not None:
            with contextlib.suppress(errors.Error):  # none sent: the retry asks newNonce
                self._add_nonce(self.last_response)

    def _pause_before_retry(self, error: Exception, waits: int) -> bool:
        """Sleep out a short Retry-After of a 429/503 and return True; False if not retryable.

        RFC 8555 §6.6 and RFC 9110 §10.2.3: no request before the time the CA gave. A longer
        wait (or a CA still refusing after RETRY_AFTER_ATTEMPTS waits) raises RateLimited so
        that the run ends now and the caller can record when to come back.
        """
        response = self.last_response
        if response is None or response.status_code not in (429, 503):
            return False
        retry_at = retry_after(response, 1)
        wait = max(0.0, (retry_at - datetime.now(UTC)).total_seconds())
        if wait > MAX_RETRY_AFTER_WAIT or waits >= RETRY_AFTER_ATTEMPTS:
            raise RateLimited(
                f"the CA is rate-limiting or unavailable ({describe(error)});"
                f" it asks to retry after {retry_at:%Y-%m-%d %H:%M:%S} UTC",
                retry_at,
            ) from error
        log.info("HTTP %d: retrying in %.1f s as the CA asked", response.status_code, wait)
        time.sleep(wait)
        return True

    def _retry_read(self, error: requests.exceptions.RequestException, tries: int) -> bool:
        """True when a read that timed out or lost its connection may be sent again.

        Reads change nothing at the CA, so one more try on a fresh connection costs at
        most one more timeout and saves a run from one stalled connection (a CA or a
        proxy that drops a request now and then). Writes (newOrder, finalize, a challenge)
        are never sent twice this way: the CA may have acted on the first.
        """
        if tries >= READ_RETRIES or not isinstance(
            error, requests.exceptions.Timeout | requests.exceptions.ConnectionError
        ):
            return False
        log.info("%s: trying once more on a new connection", describe(error))
        self.session.close()  # the pooled connection may be the one that stalled
        return True

    def get(self, *args: Any, **kwargs: Any) -> requests.Response:
        """GET, waiting out a short Retry-After and retrying a stalled read once."""
        waits = reads = 0
        while True:
            try:
                response: requests.Response = super().get(*args, **kwargs)
                return response
            except (messages.Error, errors.ClientError) as error:
                if not self._pause_before_retry(error, waits):
                    raise
                waits += 1
            except requests.exceptions.RequestException as error:
                if not self._retry_read(error, reads):
                    raise
                reads += 1

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        """POST with up to BAD_NONCE_RETRIES fresh nonces (acme retries only once).

        A POST-as-GET (no payload: a read, RFC 8555 §6.3) that stalls is retried once.
        """
        reading = (args[1] if len(args) > 1 else kwargs.get("obj")) is None
        bad_nonces = waits = reads = 0
        while True:
            try:
                response: requests.Response = self._post_once(*args, **kwargs)
                return response
            except messages.Error as error:
                # RFC 8555 §6.5: on badNonce, retry with the fresh nonce from the error.
                if error.code == "badNonce":
                    bad_nonces += 1
                    if bad_nonces >= BAD_NONCE_RETRIES:
                        raise
                elif not self._pause_before_retry(error, waits):
                    raise
                else:
                    waits += 1
            except errors.ClientError as error:
                if not self._pause_before_retry(error, waits):
                    raise
                waits += 1
            except requests.exceptions.RequestException as error:
                if not (reading and self._retry_read(error, reads)):
                    raise
                reads += 1
                continue  # no answer, so no nonce in it: the retry asks newNonce
            self._keep_nonce()


def describe(error: BaseException) -> str:
    """A short description of a library or network error, for an AcmeError message."""
    if isinstance(error, messages.Error):
        return problem_text(error)
    if isinstance(error, errors.ClientError) and error.args:
        arg = error.args[0]
        if isinstance(arg, requests.Response):
            return f"HTTP {arg.status_code} {arg.reason}"
        if isinstance(arg, tuple) and arg and isinstance(arg[0], requests.Response):
            return f"HTTP {arg[0].status_code} {arg[0].reason} with an unreadable body"
    if isinstance(error, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(error, josepy.errors.DeserializationError):
        return f"the CA's answer is malformed ({str(error)[:200]})"
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS verification failed (use --ca-bundle for a private CA)"
    if isinstance(error, requests.exceptions.ConnectionError):
        return "connection failed"
    return str(error) or type(error).__name__


def retry_after(response: requests.Response, default: float) -> datetime:
    """When the server allows the next request: Retry-After in seconds or as an HTTP date."""
    from email.utils import parsedate_to_datetime

    now = datetime.now(UTC)
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return now + timedelta(seconds=min(int(value), 366 * 86400))
    if value:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    return now + timedelta(seconds=default)
