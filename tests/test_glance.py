"""A record's summary (certctl.policy.glance) says what the policy says, at every moment.

`list` and `renew-due` read the summary kept in the store's index instead of
deciding on each record: if a summary ever disagreed with `status_of`/`decide`,
a certificate would be listed wrongly or, worse, not renewed. So for random
records (every source, method, lifetime, renew_before, ARI window, back-off,
Retry-After, order and revocation the policy looks at) and random moments —
above all the instants themselves and a microsecond either side — the summary's
answer is compared with the policy's own.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from certctl.models import SOURCE_ACME, SOURCE_UPLOAD, CertRecord, Current, OrderState, Validation
from certctl.policy import glance, timing
from test_renewal import record  # the policy tests' record: one certificate, its state

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)

offsets = st.integers(min_value=-200 * 86400, max_value=400 * 86400).map(
    lambda s: timedelta(seconds=s)
)
maybe_at = st.none() | offsets.map(lambda d: T0 + d)


@st.composite
def records(draw: Any) -> CertRecord:
    lifetime = timedelta(
        seconds=draw(st.sampled_from([3600, 36 * 3600, 6 * 86400, 10 * 86400, 90 * 86400]))
        + draw(st.integers(min_value=-5, max_value=5))
    )
    not_before = T0 + draw(offsets)
    source = draw(st.sampled_from([SOURCE_ACME, SOURCE_UPLOAD]))
    methods = ["manual"] if source == SOURCE_UPLOAD else ["standalone", "manual"]
    method = draw(st.sampled_from(methods))
    renewal: dict[str, Any] = {}
    for key in ("last_attempt", "not_before_retry", "ari_next_check"):
        at = draw(maybe_at)
        if at is not None:
            renewal[key] = at
    failures = draw(st.integers(min_value=0, max_value=5))
    if failures:
        renewal["failures"] = failures
        renewal["last_error"] = "the CA refused"
    if draw(st.booleans()):
        start = not_before + lifetime * draw(st.floats(min_value=-0.2, max_value=1.0))
        end = start + timedelta(hours=draw(st.integers(min_value=1, max_value=72)))
        renewal.update(ari_start=start, ari_end=end, ari_pick=timing.ari_pick(start, end, 0.5))
    notices: dict[str, Any] = {}
    sent = draw(maybe_at)
    if sent is not None:
        notices["last_sent"] = sent
    order = None
    if draw(st.booleans()):
        order = OrderState(
            url="https://ca.test/order/1",
            status=draw(st.sampled_from(["pending", "ready", "invalid"])),
            finalize_url="https://ca.test/fin/1",
            error=draw(st.none() | st.just("validation failed")),
            expires=draw(maybe_at),
        )
    return record(
        lifetime.total_seconds() / 86400,
        not_before=not_before,
        source=source,
        method=method,
        renew_before=draw(st.none() | st.sampled_from([0.5, 3.0, 30.0, 100.0])),
        renewal=renewal,
        notices=notices,
        revoked=draw(st.integers(min_value=0, max_value=9)) == 0,
        order=order,
        current=draw(st.integers(min_value=0, max_value=9)) > 0,  # mostly with a certificate
    )


@st.composite
def moments(draw: Any, record: CertRecord, notice_days: float) -> datetime:
    """Mostly an instant of the record or a microsecond beside it; sometimes anywhere."""
    points = glance.instants(record, notice_days)
    if points and draw(st.integers(min_value=0, max_value=3)):
        return draw(st.sampled_from(points)) + US * draw(st.sampled_from([-1, 0, 1]))
    return T0 + draw(offsets) + US * draw(st.integers(min_value=0, max_value=999_999))


NOTICE_DAYS = st.sampled_from([0.5, 7.0, 14.0, 30.0])


@settings(max_examples=400, deadline=None)
@given(data=st.data(), record=records(), notice_days=NOTICE_DAYS)
def test_the_summary_agrees_with_the_policy_at_every_moment(
    data: Any, record: CertRecord, notice_days: float
) -> None:
    summary = glance.summarize(record, notice_days)
    assert json.loads(json.dumps(summary)) == summary  # stored as JSON, read back the same
    for _ in range(12):
        now = data.draw(moments(record, notice_days))
        status = timing.status_of(record, now, notice_days)
        assert glance.state_at(summary, now) == (status.state, status.reason), now
        assert glance.quiet_at(summary["quiet"], now) == glance.quiet(record, now, notice_days), now


@settings(max_examples=200, deadline=None)
@given(record=records(), notice_days=NOTICE_DAYS, at=offsets)
def test_quiet_means_renew_due_would_neither_renew_nor_notify_nor_ask_the_ca(
    record: CertRecord, notice_days: float, at: timedelta
) -> None:
    now = T0 + at
    if glance.quiet(record, now, notice_days) and record.current is not None:
        decision = timing.decide(record, now, notice_days)
        assert not decision.renew and not decision.notify
        assert not timing.ari_check_due(record, now)


def test_a_missed_instant_would_be_caught() -> None:
    """The comparison above fails when an instant is left out (here: the due point)."""
    current = Current(1, "0a", T0, T0 + timedelta(days=90), "CA", "00", ["a.example"])
    record = CertRecord(
        name="a",
        domains=["a.example"],
        validation=Validation(method="standalone"),
        current=current,
        renewal={"ari_next_check": T0 + timedelta(days=200)},
    )
    due = timing.due_at(record, None)[0]
    points = [p for p in glance.instants(record, 14.0) if p != due]
    original = glance.instants
    try:
        glance.instants = lambda r, n: points  # type: ignore[assignment]
        summary = glance.summarize(record, 14.0)
    finally:
        glance.instants = original  # type: ignore[assignment]
    assert timing.status_of(record, due, 14.0).state == "due"
    assert glance.state_at(summary, due)[0] != "due"  # what the property test would report
    assert glance.quiet_at(summary["quiet"], due) != glance.quiet(record, due, 14.0)


def test_the_key_names_the_notice_days_and_changes_with_the_policy() -> None:
    assert glance.summary_key(14.0) != glance.summary_key(7.0)
    assert glance.summary_key(14.0) == glance.summary_key(14.0)
    assert glance.summary_key(14.0).startswith(f"{glance.FORMAT}:")
