"""Renewal and notice policy: pure functions of a certificate's dates and `now`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from certctl.models import SOURCE_UPLOAD, CertRecord

SHORT_LIFETIME = timedelta(days=10)


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


@dataclass(frozen=True)
class Status:
    """A certificate's state for `list` and `renew-due`, with the reason."""

    state: str  # valid | due | expiring | expired | pending order | failed | revoked
    reason: str
    days_left: float | None
    due_at: datetime | None


def status_of(record: CertRecord, now: datetime, notice_days: float) -> Status:
    """Decide a certificate's state at `now` (no I/O)."""
    current = record.current
    order = record.order
    if current is None:
        if order is not None and order.status == "invalid":
            return Status("failed", order.error or "validation failed", None, None)
        if order is not None:
            return Status("pending order", f"order is {order.status}", None, None)
        return Status("failed", "no certificate and no order", None, None)
    days_left = (current.not_after - now).total_seconds() / 86400
    if record.revoked:
        return Status("revoked", "revoked: needs a new certificate", days_left, now)
    if now >= current.not_after:
        return Status("expired", f"expired {current.not_after:%Y-%m-%d}", days_left, now)
    automatic = record.source != SOURCE_UPLOAD and record.validation.automatic
    due_at = renewal_point(current.not_before, current.not_after)
    if record.renew_before_days is not None:
        due_at = current.not_after - timedelta(days=record.renew_before_days)
    window = notice_window(current.not_before, current.not_after, notice_days)
    if record.renewal.get("failures") and now >= current.not_after - window:
        return Status("failed", "automatic renewal failed", days_left, due_at)
    if order is not None and order.status == "invalid":
        return Status("failed", order.error or "renewal order failed", days_left, due_at)
    if automatic and now >= due_at:
        return Status("due", "renewal due", days_left, due_at)
    if not automatic and now >= current.not_after - window:
        return Status("expiring", "will not renew automatically", days_left, due_at)
    if order is not None:
        return Status("pending order", f"renewal order is {order.status}", days_left, due_at)
    return Status("valid", "ok", days_left, due_at)
