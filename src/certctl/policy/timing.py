"""Renewal and notice policy: pure functions of a certificate's facts and `now`.

No I/O here (STYLE: fetch inputs, decide purely, then act). Table-tested in
tests/test_renewal.py at fixed instants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from certctl.models import SOURCE_UPLOAD, CertRecord, OrderState

SHORT_LIFETIME = timedelta(days=10)
# Let's Encrypt's integration guide: retry after about 1 minute, 10 minutes,
# 100 minutes, then daily.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=10), timedelta(minutes=100))
BACKOFF_DAILY = timedelta(days=1)


def renewal_point(not_before: datetime, not_after: datetime) -> datetime:
    """When to renew without ARI: a third of the lifetime left, half for short ones.

    Let's Encrypt's integration guide: 30 days of a 90-day certificate; for
    lifetimes under 10 days, half (3 days of a 6-day certificate).
    """
    lifetime = not_after - not_before
    remaining = lifetime / 2 if lifetime < SHORT_LIFETIME else lifetime / 3
    return not_after - remaining


def notice_window(not_before: datetime, not_after: datetime, notice_days: float) -> timedelta:
    """The notice window: `notice_days`, but never more than a third of the lifetime."""
    return min(timedelta(days=notice_days), (not_after - not_before) / 3)


def backoff_delay(failures: int) -> timedelta:
    """How long to wait after the `failures`-th consecutive failure (1 = first)."""
    if failures <= 0:
        return timedelta(0)
    return BACKOFF[failures - 1] if failures <= len(BACKOFF) else BACKOFF_DAILY


@dataclass(frozen=True)
class AriWindow:
    """A CA's suggested renewal window (RFC 9773 §4.2) and the moment picked inside it."""

    start: datetime
    end: datetime
    pick: datetime  # RFC 9773 §4.2: a uniformly random moment in the window


def ari_pick(start: datetime, end: datetime, fraction: float) -> datetime:
    """The moment `fraction` (0..1, random) through the window."""
    return start + (end - start) * min(1.0, max(0.0, fraction))


def due_at(record: CertRecord, ari: AriWindow | None) -> tuple[datetime, str]:
    """When the live certificate becomes due for renewal, and by which rule."""
    current = record.current
    assert current is not None
    if record.renew_before_days is not None:
        return (
            current.not_after - timedelta(days=record.renew_before_days),
            f"renew_before = {record.renew_before_days:g} days",
        )
    # RFC 9773 §4.2; a window that started before this certificate was issued is
    # stale (it was meant for its predecessor): following it would renew in a loop.
    if ari is not None and current.not_before < ari.start:
        return ari.pick, "the CA's renewal window (ARI)"
    lifetime = current.not_after - current.not_before
    share = "half" if lifetime < SHORT_LIFETIME else "a third"
    return renewal_point(current.not_before, current.not_after), f"{share} of the lifetime left"


def failures_of(record: CertRecord) -> int:
    """Consecutive failed renewals of the live certificate (older ones don't count)."""
    failures = int(record.renewal.get("failures", 0) or 0)
    last = record.renewal.get("last_attempt")
    current = record.current
    if (
        failures
        and current is not None
        and isinstance(last, datetime)
        and last < current.not_before
    ):
        return 0  # failures of its predecessor: this certificate was issued since
    return failures


@dataclass(frozen=True)
class Status:
    """A certificate's state for `list`, `show` and `renew-due`, with the reason."""

    # valid | due | expiring | expired | pending order | order expired | failed | revoked
    state: str
    reason: str
    days_left: float | None
    due_at: datetime | None


def ari_of(record: CertRecord) -> AriWindow | None:
    """The stored ARI window of a record, if any."""
    renewal = record.renewal
    if {"ari_start", "ari_end", "ari_pick"} <= renewal.keys():
        return AriWindow(renewal["ari_start"], renewal["ari_end"], renewal["ari_pick"])
    return None


def status_of(record: CertRecord, now: datetime, notice_days: float) -> Status:
    """Decide a certificate's state at `now` (no I/O)."""
    current = record.current
    order = record.order
    if current is None:
        if order is not None and order.status == "invalid":
            return Status("failed", order.error or "validation failed", None, None)
        if order is not None and _order_expired(order, now):
            return Status("order expired", _expired_order_reason(order), None, None)
        if order is not None:
            return Status("pending order", f"order is {order.status}", None, None)
        return Status("failed", "no certificate and no order", None, None)
    days_left = (current.not_after - now).total_seconds() / 86400
    due, rule = due_at(record, ari_of(record))
    if record.revoked:
        return Status("revoked", "revoked: needs a new certificate", days_left, now)
    if now >= current.not_after:
        return Status("expired", f"expired {current.not_after:%Y-%m-%d}", days_left, now)
    automatic = record.source != SOURCE_UPLOAD and record.validation.automatic
    window = notice_window(current.not_before, current.not_after, notice_days)
    if failures_of(record):
        error = record.renewal.get("last_error", "automatic renewal failed")
        return Status("failed", f"renewal failed: {error}", days_left, due)
    if order is not None and order.status == "invalid":
        return Status("failed", order.error or "renewal order failed", days_left, due)
    if automatic and now >= due:
        return Status("due", f"renewal due ({rule})", days_left, due)
    if not automatic and now >= current.not_after - window:
        return Status("expiring", "will not be renewed automatically", days_left, due)
    if order is not None and _order_expired(order, now):
        return Status("order expired", "renewal " + _expired_order_reason(order), days_left, due)
    if order is not None:
        return Status("pending order", f"renewal order is {order.status}", days_left, due)
    return Status("valid", "ok", days_left, due)


def _order_expired(order: OrderState, now: datetime) -> bool:
    """RFC 8555 §7.1.3: past its `expires` the CA no longer accepts the order."""
    return order.expires is not None and order.expires <= now


def _expired_order_reason(order: OrderState) -> str:
    assert order.expires is not None
    return f"order expired {order.expires:%Y-%m-%d %H:%M} UTC: order again"


@dataclass(frozen=True)
class Decision:
    """What renew-due should do with one certificate now, and why."""

    renew: bool
    notify: bool
    reason: str
    wait_until: datetime | None = None  # backoff: no attempt before this


def decide(
    record: CertRecord, now: datetime, notice_days: float, *, force: bool = False
) -> Decision:
    """Renew, notify, both or neither, at `now` (no I/O; the ARI window is in the record)."""
    current = record.current
    automatic = record.source != SOURCE_UPLOAD and record.validation.automatic
    if current is None:
        return Decision(False, False, "no certificate yet")
    status = status_of(record, now, notice_days)
    window = notice_window(current.not_before, current.not_after, notice_days)
    in_window = now >= current.not_after - window
    failures = failures_of(record)
    if force and automatic:
        return Decision(True, False, "forced")
    if not automatic:
        manual = "uploaded" if record.source == SOURCE_UPLOAD else record.validation.label
        return Decision(
            False,
            in_window or record.revoked,
            f"{status.reason}: {manual} certificates need a human",
        )
    due = status.state in ("due", "expired", "revoked") or (
        status.state == "failed" and failures > 0
    )
    if status.state == "failed" and failures == 0:
        due = now >= (status.due_at or now)
    if not due:
        return Decision(False, False, status.reason)
    retry = record.renewal.get("not_before_retry")
    if isinstance(retry, datetime) and now < retry:
        # RFC 8555 §6.6, RFC 9110 §10.2.3: the CA's Retry-After; no request to it before then
        return Decision(
            False, in_window, f"the CA asked to retry after {retry:%Y-%m-%d %H:%M} UTC", retry
        )
    if failures:
        last = record.renewal.get("last_attempt")
        next_try = last + backoff_delay(failures) if isinstance(last, datetime) else None
        if next_try is not None and now < next_try:
            # a failed renewal always warrants a notice (at most daily, see notice_due)
            return Decision(False, True, f"backing off after {failures} failure(s)", next_try)
    return Decision(True, False, status.reason)


def ari_check_due(record: CertRecord, now: datetime) -> bool:
    """True when the CA's renewal information (RFC 9773) should be fetched again at `now`."""
    automatic = record.source != SOURCE_UPLOAD and record.validation.automatic
    if not automatic or record.current is None or now >= record.current.not_after:
        return False  # RFC 9773 §4.3: no ARI for expired certificates
    retry = record.renewal.get("not_before_retry")
    if isinstance(retry, datetime) and now < retry:
        return False  # the CA's Retry-After (RFC 8555 §6.6): not even ARI before then
    next_check = record.renewal.get("ari_next_check")
    return not isinstance(next_check, datetime) or now >= next_check


def _utc_day(value: object) -> object:
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.date() if isinstance(value, datetime) else value


def notice_due(record: CertRecord, today: date, channels: Sequence[str] = ()) -> bool:
    """At most one notice a day per certificate and channel (UTC days).

    With channels, due while one of them has not accepted a notice today (a
    failed delivery is retried by the next run); without any, once a day.
    """
    if channels:
        return bool(channels_due(record, today, channels))
    return _utc_day(record.notices.get("last_sent")) != today


def channels_due(record: CertRecord, today: date, channels: Sequence[str]) -> list[str]:
    """The channels (by label) that have not accepted a notice for this certificate today."""
    delivered = record.notices.get("delivered")
    if delivered is None:  # written by an older certctl: one notice a day for all channels
        return [] if _utc_day(record.notices.get("last_sent")) == today else list(channels)
    return [label for label in channels if _utc_day(delivered.get(label)) != today]


def max_renew_before(not_before: datetime, not_after: datetime) -> float:
    """The largest `renew_before` (days) that leaves a fresh certificate not due at once.

    A fresh certificate must live at least a day (half its lifetime when shorter
    than two days) before it is due, else every renew-due run would renew it.
    The lifetime is taken to the minute (a CA's 90 days may end a second early),
    the result rounded down to 0.01 days.
    """
    lifetime = timedelta(minutes=round((not_after - not_before).total_seconds() / 60))
    largest = lifetime - min(timedelta(days=1), lifetime / 2)
    return int(largest.total_seconds() / 864) / 100


def lifetime_days(not_before: datetime, not_after: datetime) -> float:
    """A certificate's lifetime in days, to the minute."""
    return round((not_after - not_before).total_seconds() / 60) / 1440


def renewal_wanted(record: CertRecord, now: datetime) -> str | None:
    """Why a new certificate for `record` is wanted at `now`; None when the live one will do.

    The same due-ness as renew-due (due_at: renew_before, ARI, lifetime share), applied
    to `issue`/`obtain` so a valid certificate is not duplicated by re-running them.
    """
    current = record.current
    if current is None:
        return "no certificate yet"
    if record.revoked:
        return "the certificate is revoked"
    if now >= current.not_after:
        return f"the certificate expired {current.not_after:%Y-%m-%d}"
    due, rule = due_at(record, ari_of(record))
    if now >= due:
        return f"renewal due ({rule})"
    return None
