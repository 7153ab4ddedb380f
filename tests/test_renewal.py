"""The renewal and notice policy (certctl.policy.timing), table-driven at fixed instants.

Everything here is pure: records are built directly and `now` is always a fixed
instant, never the real clock. The end-to-end behaviour (Pebble, real channels)
lives in test_renew_pebble.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certctl.models import (
    SOURCE_ACME,
    SOURCE_UPLOAD,
    CertRecord,
    ChallengeType,
    Current,
    OrderState,
    Validation,
)
from certctl.policy.timing import (
    AriWindow,
    ari_of,
    ari_pick,
    backoff_delay,
    channels_due,
    decide,
    due_at,
    notice_due,
    notice_window,
    renewal_point,
    status_of,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # every certificate here starts at T0 unless told
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
NOTICE = 14.0  # the default --notice-days


def days(n: float) -> timedelta:
    return timedelta(days=n)


def record(
    lifetime: float = 90,
    *,
    not_before: datetime = T0,
    source: str = SOURCE_ACME,
    method: str = "standalone",
    challenge: ChallengeType = "http",
    renew_before: float | None = None,
    renewal: dict[str, Any] | None = None,
    notices: dict[str, Any] | None = None,
    revoked: bool = False,
    order: OrderState | None = None,
    current: bool = True,
) -> CertRecord:
    """A certificate valid from `not_before` for `lifetime` days."""
    live = Current(
        version=1,
        serial="0a1b2c",
        not_before=not_before,
        not_after=not_before + days(lifetime),
        issuer="Test CA",
        fingerprint="00" * 32,
        names=["www.example.com"],
    )
    return CertRecord(
        name="www",
        domains=["www.example.com"],
        source=source,
        validation=Validation(challenge=challenge, method=method),
        renew_before_days=renew_before,
        current=live if current else None,
        order=order,
        revoked=revoked,
        renewal=dict(renewal or {}),
        notices=dict(notices or {}),
    )


def order(status: str, error: str | None = None, expires: datetime | None = None) -> OrderState:
    return OrderState(
        url="https://ca.test/order/1",
        status=status,
        finalize_url="https://ca.test/fin/1",
        error=error,
        expires=expires,
    )


def ari(start: timedelta, end: timedelta, pick: timedelta) -> dict[str, datetime]:
    """A stored ARI window, offsets from T0 (as renew.py keeps it in record.renewal)."""
    return {"ari_start": T0 + start, "ari_end": T0 + end, "ari_pick": T0 + pick}


def uploaded(lifetime: float = 90, **kw: Any) -> CertRecord:
    return record(lifetime, source=SOURCE_UPLOAD, method="manual", **kw)


def manual(lifetime: float = 90, **kw: Any) -> CertRecord:
    return record(lifetime, method="manual", **kw)


# --- renewal_point: a third of the lifetime left, half under 10 days -----------------------


@pytest.mark.parametrize(
    ("lifetime", "left"),
    [
        pytest.param(days(90), days(30), id="90-day: 30 days left"),
        pytest.param(days(45), days(15), id="45-day: 15 days left"),
        pytest.param(days(6), days(3), id="6-day shortlived: half, 3 days left"),
        pytest.param(days(10), days(10) / 3, id="10-day boundary: a third (not under 10)"),
        pytest.param(days(10) - SECOND, (days(10) - SECOND) / 2, id="just under 10: half"),
        pytest.param(timedelta(hours=1), timedelta(minutes=30), id="1 hour: half"),
        pytest.param(days(398), days(398) / 3, id="398-day: a third"),
    ],
)
def test_renewal_point(lifetime: timedelta, left: timedelta) -> None:
    assert renewal_point(T0, T0 + lifetime) == T0 + lifetime - left


@pytest.mark.parametrize(
    ("lifetime", "left_when_due"),
    [(90, 30), (45, 15), (6, 3), (10, 10 / 3), (9, 4.5)],
    ids=["90d", "45d", "6d", "10d", "9d"],
)
def test_automatic_certificate_due_exactly_at_its_renewal_point(
    lifetime: float, left_when_due: float
) -> None:
    cert = record(lifetime)
    point = T0 + days(lifetime) - days(left_when_due)
    assert not decide(cert, point - SECOND, NOTICE).renew
    assert status_of(cert, point - SECOND, NOTICE).state == "valid"
    at = decide(cert, point, NOTICE)
    assert (at.renew, at.notify) == (True, False)
    status = status_of(cert, point, NOTICE)
    assert status.state == "due"
    assert status.days_left == pytest.approx(left_when_due)
    assert status.due_at is not None
    assert abs(status.due_at - point) <= timedelta(microseconds=1)


# --- notice_window: 14 days (or --notice-days), never more than a third of the lifetime ------


@pytest.mark.parametrize(
    ("lifetime", "notice_days", "window"),
    [
        pytest.param(90, 14, days(14), id="90d default: 14 days"),
        pytest.param(45, 14, days(14), id="45d default: 14 days (a third is 15)"),
        pytest.param(30, 14, days(10), id="30d: capped at 10 days"),
        pytest.param(6, 14, days(2), id="6d shortlived: 2 days"),
        pytest.param(10, 14, days(10) / 3, id="10d: 3.33 days"),
        pytest.param(90, 7, days(7), id="custom 7 days"),
        pytest.param(90, 30, days(30), id="custom 30 days = a third"),
        pytest.param(90, 45, days(30), id="custom 45 days capped at a third"),
        pytest.param(90, 0.5, timedelta(hours=12), id="custom half a day"),
        pytest.param(90, 0, timedelta(0), id="custom 0: no window"),
    ],
)
def test_notice_window(lifetime: float, notice_days: float, window: timedelta) -> None:
    assert notice_window(T0, T0 + days(lifetime), notice_days) == window


def test_notice_window_values_in_days() -> None:
    assert notice_window(T0, T0 + days(6), 14) / DAY == pytest.approx(2)
    assert notice_window(T0, T0 + days(10), 14) / DAY == pytest.approx(3.33, abs=0.005)


# --- backoff_delay: 1 min, 10 min, 100 min, then daily -----------------------------------


@pytest.mark.parametrize(
    ("failures", "delay"),
    [
        (-1, timedelta(0)),
        (0, timedelta(0)),
        (1, timedelta(minutes=1)),
        (2, timedelta(minutes=10)),
        (3, timedelta(minutes=100)),
        (4, DAY),
        (5, DAY),
        (10, DAY),
        (1000, DAY),
    ],
)
def test_backoff_delay(failures: int, delay: timedelta) -> None:
    assert backoff_delay(failures) == delay


# --- ari_pick / ari_of ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fraction", "offset"),
    [
        (0.0, timedelta(0)),
        (0.25, timedelta(hours=12)),
        (0.5, DAY),
        (1.0, days(2)),
        (-0.5, timedelta(0)),  # clamped into the window
        (1.5, days(2)),
    ],
)
def test_ari_pick_inside_window(fraction: float, offset: timedelta) -> None:
    start = T0 + days(60)
    assert ari_pick(start, start + days(2), fraction) == start + offset


def test_ari_of_needs_the_whole_window() -> None:
    full = record(renewal=ari(days(50), days(52), days(51)))
    assert ari_of(full) == AriWindow(T0 + days(50), T0 + days(52), T0 + days(51))
    partial = record(renewal={"ari_start": T0 + days(50), "ari_end": T0 + days(52)})
    assert ari_of(partial) is None
    assert ari_of(record()) is None


# --- due_at: which rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cert", "window", "expected", "rule"),
    [
        pytest.param(record(90), None, T0 + days(60), "a third", id="90d lifetime rule"),
        pytest.param(record(45), None, T0 + days(30), "a third", id="45d lifetime rule"),
        pytest.param(record(6), None, T0 + days(3), "half", id="6d lifetime rule"),
        pytest.param(
            record(90),
            AriWindow(T0 + days(50), T0 + days(52), T0 + days(51)),
            T0 + days(51),
            "ARI",
            id="ARI before the lifetime rule",
        ),
        pytest.param(
            record(90),
            AriWindow(T0 + days(70), T0 + days(72), T0 + days(71)),
            T0 + days(71),
            "ARI",
            id="ARI after the lifetime rule",
        ),
        pytest.param(
            record(90, not_before=T0 + days(10)),
            AriWindow(T0 + days(5), T0 + days(7), T0 + days(6)),
            T0 + days(70),
            "a third",
            id="stale ARI (issued after the window started) ignored",
        ),
        pytest.param(
            record(90, not_before=T0 + days(50)),
            AriWindow(T0 + days(50), T0 + days(52), T0 + days(51)),
            T0 + days(110),
            "a third",
            id="ARI window starting at not_before is stale",
        ),
        pytest.param(
            record(90, renew_before=5),
            AriWindow(T0 + days(50), T0 + days(52), T0 + days(51)),
            T0 + days(85),
            "renew_before",
            id="renew_before beats ARI and lifetime",
        ),
        pytest.param(
            record(6, renew_before=1000),
            None,
            T0 + days(6) - days(1000),
            "renew_before = 1000 days",
            id="renew_before beyond the lifetime: due now",
        ),
    ],
)
def test_due_at(cert: CertRecord, window: AriWindow | None, expected: datetime, rule: str) -> None:
    when, why = due_at(cert, window)
    assert when == expected
    assert rule in why


# --- decide: automatic certificates ---------------------------------------------------------


@pytest.mark.parametrize(
    ("cert", "now", "renew"),
    [
        # ARI window present and the certificate predates it: the CA's pick rules.
        pytest.param(record(renewal=ari(days(50), days(52), days(51))), days(51) - SECOND, False),
        pytest.param(record(renewal=ari(days(50), days(52), days(51))), days(51), True),
        # ... even later than the lifetime rule (a third left at day 60)
        pytest.param(record(renewal=ari(days(70), days(72), days(71))), days(65), False),
        pytest.param(record(renewal=ari(days(70), days(72), days(71))), days(71), True),
        # the CA asks for immediate renewal (e.g. an incident): a window in the past
        pytest.param(record(renewal=ari(days(1), days(2), days(1))), days(3), True),
        # stale window (kept from the predecessor): lifetime rule, no renewal loop
        pytest.param(
            record(not_before=T0 + days(10), renewal=ari(days(5), days(7), days(6))),
            days(11),
            False,
            id="stale-ARI-fresh-cert",
        ),
        pytest.param(
            record(not_before=T0 + days(10), renewal=ari(days(5), days(7), days(6))),
            days(70) - SECOND,
            False,
            id="stale-ARI-before-lifetime-point",
        ),
        pytest.param(
            record(not_before=T0 + days(10), renewal=ari(days(5), days(7), days(6))),
            days(70),
            True,
            id="stale-ARI-lifetime-point",
        ),
        # renew_before overrides both the ARI pick and the lifetime rule
        pytest.param(
            record(renew_before=5, renewal=ari(days(50), days(52), days(51))),
            days(80),
            False,
            id="override-later-than-ARI-and-lifetime",
        ),
        pytest.param(
            record(renew_before=5, renewal=ari(days(50), days(52), days(51))),
            days(85),
            True,
            id="override-point",
        ),
        pytest.param(record(renew_before=60), days(30), True, id="override-earlier"),
        pytest.param(record(renew_before=60), days(30) - SECOND, False, id="override-earlier-not"),
        # expired: due immediately, whatever the rules say
        pytest.param(record(90), days(90), True, id="expired-at-not_after"),
        pytest.param(record(90), days(400), True, id="expired-long-ago"),
        pytest.param(record(6), days(7), True, id="expired-6d"),
        pytest.param(record(90, renew_before=0), days(90), True, id="expired-override-0"),
        pytest.param(
            record(renewal=ari(days(100), days(102), days(101))), days(95), True, id="expired-ARI"
        ),
    ],
)
def test_decide_automatic(cert: CertRecord, now: timedelta, renew: bool) -> None:
    decision = decide(cert, T0 + now, NOTICE)
    assert decision.renew is renew
    assert decision.notify is False


def test_expired_is_due_immediately_and_says_so() -> None:
    cert = record(90)
    status = status_of(cert, T0 + days(91), NOTICE)
    assert status.state == "expired"
    assert status.days_left == pytest.approx(-1)
    decision = decide(cert, T0 + days(91), NOTICE)
    assert decision.renew and "expired 2025-05-30" in decision.reason


@pytest.mark.parametrize("method", ["standalone", "webroot", "rfc2136", "hook"])
def test_every_automatic_method_is_renewed(method: str) -> None:
    challenge: ChallengeType = "dns" if method in ("rfc2136", "hook") else "http"
    cert = record(90, method=method, challenge=challenge)
    assert decide(cert, T0 + days(61), NOTICE).renew


# --- decide: certificates that need a human -------------------------------------------------


NEEDS_HUMAN = [
    pytest.param(uploaded, id="uploaded"),
    pytest.param(manual, id="manual http-01"),
    pytest.param(lambda lifetime=90, **kw: record(lifetime, method="manual", challenge="dns", **kw),
                 id="manual dns-01"),
    # uploaded material never renews, whatever validation settings linger in the record
    pytest.param(lambda lifetime=90, **kw: record(lifetime, source=SOURCE_UPLOAD, **kw),
                 id="uploaded with standalone settings"),
]  # fmt: skip


@pytest.mark.parametrize("make", NEEDS_HUMAN)
@pytest.mark.parametrize(
    ("lifetime", "notice_days", "now", "notify", "state"),
    [
        pytest.param(90, 14, days(76) - SECOND, False, "valid", id="90d, 14d+1s left"),
        pytest.param(90, 14, days(76), True, "expiring", id="90d, 14d left"),
        pytest.param(90, 14, days(89), True, "expiring", id="90d, 1d left"),
        pytest.param(90, 14, days(60), False, "valid", id="90d, 30d left (lifetime rule)"),
        pytest.param(90, 14, days(90), True, "expired", id="90d, expired"),
        pytest.param(90, 14, days(200), True, "expired", id="90d, long expired"),
        pytest.param(90, 30, days(60), True, "expiring", id="custom 30d window, 30d left"),
        pytest.param(90, 30, days(60) - SECOND, False, "valid", id="custom 30d window, outside"),
        pytest.param(90, 3, days(86), False, "valid", id="custom 3d window, 4d left"),
        pytest.param(90, 3, days(87), True, "expiring", id="custom 3d window, 3d left"),
        pytest.param(6, 14, days(3), False, "valid", id="6d, 3d left: not yet"),
        pytest.param(6, 14, days(4) - SECOND, False, "valid", id="6d, just outside 2d"),
        pytest.param(6, 14, days(4), True, "expiring", id="6d, 2d left"),
        pytest.param(10, 14, days(6.6), False, "valid", id="10d, 3.4d left"),
        pytest.param(10, 14, days(6.7), True, "expiring", id="10d, 3.3d left"),
        pytest.param(10, 14, days(8), True, "expiring", id="10d, 2d left"),
    ],
)
def test_needs_human_never_renewed_notified_inside_window(
    make: Any, lifetime: float, notice_days: float, now: timedelta, notify: bool, state: str
) -> None:
    cert = make(lifetime)
    decision = decide(cert, T0 + now, notice_days)
    assert (decision.renew, decision.notify) == (False, notify)
    assert "need a human" in decision.reason
    assert status_of(cert, T0 + now, notice_days).state == state
    # forcing cannot renew what certctl cannot validate by itself
    forced = decide(cert, T0 + now, notice_days, force=True)
    assert (forced.renew, forced.notify) == (False, notify)


@pytest.mark.parametrize("make", NEEDS_HUMAN)
def test_needs_human_ignores_renew_before_and_ari(make: Any) -> None:
    cert = make(90, renew_before=1000, renewal=ari(days(1), days(2), days(1)))
    decision = decide(cert, T0 + days(10), NOTICE)
    assert (decision.renew, decision.notify) == (False, False)


def test_automatic_in_notice_window_but_not_due_is_left_alone() -> None:
    # renew_before 3 days: with 10 days left it will still be renewed automatically
    cert = record(90, renew_before=3)
    decision = decide(cert, T0 + days(80), NOTICE)
    assert (decision.renew, decision.notify) == (False, False)
    assert status_of(cert, T0 + days(80), NOTICE).state == "valid"


# --- revoked --------------------------------------------------------------------------------


def test_revoked_automatic_is_renewed_at_once() -> None:
    cert = record(90, revoked=True)
    decision = decide(cert, T0 + days(5), NOTICE)
    assert (decision.renew, decision.notify) == (True, False)
    assert status_of(cert, T0 + days(5), NOTICE).state == "revoked"


@pytest.mark.parametrize("make", NEEDS_HUMAN)
def test_revoked_needing_a_human_is_notified_even_outside_window(make: Any) -> None:
    cert = make(90, revoked=True)
    decision = decide(cert, T0 + days(5), NOTICE)
    assert (decision.renew, decision.notify) == (False, True)
    assert "revoked" in decision.reason
    assert status_of(cert, T0 + days(5), NOTICE).state == "revoked"


# --- back-off after failures ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "delay"),
    [
        (1, timedelta(minutes=1)),
        (2, timedelta(minutes=10)),
        (3, timedelta(minutes=100)),
        (4, DAY),
        (10, DAY),
    ],
)
def test_backoff_no_renewal_before_last_attempt_plus_delay(failures: int, delay: timedelta) -> None:
    last = T0 + days(61)  # the 90-day certificate was due at day 60
    cert = record(
        90, renewal={"failures": failures, "last_attempt": last, "last_error": "DNS SERVFAIL"}
    )
    for now in (last, last + SECOND, last + delay - SECOND):
        waiting = decide(cert, now, NOTICE)
        assert waiting.renew is False, now
        assert waiting.notify is True  # a failed renewal warrants a (daily) notice
        assert waiting.wait_until == last + delay
        assert f"{failures} failure" in waiting.reason
    for now in (last + delay, last + delay + SECOND, last + days(30)):
        assert decide(cert, now, NOTICE).renew is True, now
    status = status_of(cert, last + SECOND, NOTICE)
    assert status.state == "failed"
    assert "DNS SERVFAIL" in status.reason


@pytest.mark.parametrize("failures", [1, 2, 3, 4, 10])
def test_force_overrides_backoff_for_automatic(failures: int) -> None:
    last = T0 + days(61)
    cert = record(90, renewal={"failures": failures, "last_attempt": last})
    assert not decide(cert, last + SECOND, NOTICE).renew
    forced = decide(cert, last + SECOND, NOTICE, force=True)
    assert (forced.renew, forced.notify) == (True, False)


def test_force_renews_an_automatic_certificate_that_is_not_due() -> None:
    cert = record(90)
    assert not decide(cert, T0 + DAY, NOTICE).renew
    assert decide(cert, T0 + DAY, NOTICE, force=True).renew


def test_backoff_applies_to_expired_and_revoked_too() -> None:
    last = T0 + days(95)
    for cert in (
        record(90, renewal={"failures": 2, "last_attempt": last}),
        record(90, revoked=True, renewal={"failures": 2, "last_attempt": last}),
    ):
        assert not decide(cert, last + timedelta(minutes=9), NOTICE).renew
        assert decide(cert, last + timedelta(minutes=10), NOTICE).renew


def test_failure_without_recorded_attempt_time_retries() -> None:
    cert = record(90, renewal={"failures": 1})
    assert decide(cert, T0 + days(61), NOTICE).renew


def test_no_certificate_yet_is_neither_renewed_nor_notified() -> None:
    cert = record(current=False, order=order("pending"))
    decision = decide(cert, T0, NOTICE, force=True)
    assert (decision.renew, decision.notify) == (False, False)


def test_failures_older_than_the_live_certificate_do_not_make_it_due() -> None:
    # renewal at day 60 failed; at day 61 a human re-issued it by hand (version 2)
    cert = record(
        90,
        not_before=T0 + days(61),
        renewal={"failures": 1, "last_attempt": T0 + days(60), "last_error": "DNS SERVFAIL"},
    )
    decision = decide(cert, T0 + days(62), NOTICE)
    assert decision.renew is False
    assert status_of(cert, T0 + days(62), NOTICE).state == "valid"


# --- notice_due: at most once per calendar day (UTC) ----------------------------------------


@pytest.mark.parametrize(
    ("last_sent", "today", "due"),
    [
        pytest.param(None, date(2025, 3, 2), True, id="never sent"),
        pytest.param(datetime(2025, 3, 2, 0, 0, 1, tzinfo=UTC), date(2025, 3, 2), False,
                     id="sent just after midnight today"),
        pytest.param(datetime(2025, 3, 2, 23, 59, 59, tzinfo=UTC), date(2025, 3, 2), False,
                     id="sent late today"),
        pytest.param(datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC), date(2025, 3, 2), True,
                     id="sent late yesterday"),
        pytest.param(datetime(2025, 2, 1, 12, tzinfo=UTC), date(2025, 3, 2), True,
                     id="sent a month ago"),
        pytest.param(date(2025, 3, 2), date(2025, 3, 2), False, id="date today"),
        pytest.param(date(2025, 3, 1), date(2025, 3, 2), True, id="date yesterday"),
    ],
)  # fmt: skip
def test_notice_due_once_a_day(last_sent: Any, today: date, due: bool) -> None:
    notices = {} if last_sent is None else {"last_sent": last_sent, "last_reason": "expiring"}
    assert notice_due(record(notices=notices), today) is due


def test_notice_due_sequence_over_days() -> None:
    cert = uploaded(90)  # expires 2025-05-30 12:00 UTC
    now = datetime(2025, 5, 20, tzinfo=UTC)  # inside the 14-day window
    sent = []
    for hour in range(0, 24 * 3, 6):  # a cron job every six hours for three days
        instant = now + timedelta(hours=hour)
        decision = decide(cert, instant, NOTICE)
        if decision.notify and notice_due(cert, instant.date()):
            sent.append(instant)
            cert.notices["last_sent"] = instant
    assert [s.date() for s in sent] == [date(2025, 5, 20), date(2025, 5, 21), date(2025, 5, 22)]


@pytest.mark.parametrize(
    ("last_sent", "today", "due"),
    [
        # 20:00 -05:00 on the 1st is 01:00 UTC on the 2nd: already sent today (UTC)
        (datetime(2025, 3, 1, 20, tzinfo=timezone(timedelta(hours=-5))), date(2025, 3, 2), False),
        # 01:00 +05:00 on the 2nd is 20:00 UTC on the 1st: not sent today (UTC)
        (datetime(2025, 3, 2, 1, tzinfo=timezone(timedelta(hours=5))), date(2025, 3, 2), True),
    ],
)
def test_notice_due_compares_utc_days(last_sent: datetime, today: date, due: bool) -> None:
    assert notice_due(record(notices={"last_sent": last_sent}), today) is due


# --- per channel: a notice counts once the channel accepted it -------------------------------

MAIL, HOOK = "e-mail to ops@example.net", "webhook https://hooks.example.net/…"
TODAY = date(2025, 3, 2)


@pytest.mark.parametrize(
    ("delivered", "due"),
    [
        pytest.param({}, [MAIL, HOOK], id="none accepted yet"),
        pytest.param({HOOK: datetime(2025, 3, 2, 6, tzinfo=UTC)}, [MAIL], id="the webhook did"),
        pytest.param({MAIL: datetime(2025, 3, 2, 6, tzinfo=UTC),
                      HOOK: datetime(2025, 3, 2, 7, tzinfo=UTC)}, [], id="both did today"),
        pytest.param({MAIL: datetime(2025, 3, 1, 23, tzinfo=UTC),
                      HOOK: datetime(2025, 3, 2, 7, tzinfo=UTC)}, [MAIL], id="mail yesterday"),
        pytest.param({"webhook https://old.example/…": datetime(2025, 3, 2, tzinfo=UTC)},
                     [MAIL, HOOK], id="a channel no longer configured"),
    ],
)  # fmt: skip
def test_channels_due_until_each_accepted_today(
    delivered: dict[str, datetime], due: list[str]
) -> None:
    # last_sent (the run's own output) says today: only acceptance per channel counts
    cert = record(
        notices={"last_sent": datetime(2025, 3, 2, 6, tzinfo=UTC), "delivered": delivered}
    )
    assert channels_due(cert, TODAY, [MAIL, HOOK]) == due
    assert notice_due(cert, TODAY, [MAIL, HOOK]) is bool(due)


def test_without_channels_the_notice_is_once_a_day_by_last_sent() -> None:
    cert = record(notices={"last_sent": datetime(2025, 3, 2, 6, tzinfo=UTC), "delivered": {}})
    assert notice_due(cert, TODAY) is False
    assert notice_due(cert, date(2025, 3, 3)) is True


def test_notices_recorded_by_an_older_certctl_count_for_every_channel() -> None:
    older = record(notices={"last_sent": datetime(2025, 3, 2, 6, tzinfo=UTC), "channels": [MAIL]})
    assert channels_due(older, TODAY, [MAIL, HOOK]) == []  # not all re-sent on upgrade day
    assert channels_due(older, date(2025, 3, 3), [MAIL, HOOK]) == [MAIL, HOOK]


# --- status_of: the states `list` shows -----------------------------------------------------


@pytest.mark.parametrize(
    ("cert", "now", "state", "reason"),
    [
        pytest.param(record(90), days(10), "valid", "ok", id="valid"),
        pytest.param(record(90), days(61), "due", "a third of the lifetime", id="due"),
        pytest.param(record(6), days(3.5), "due", "half of the lifetime", id="due-6d"),
        pytest.param(record(renewal=ari(days(50), days(52), days(51))), days(51), "due", "ARI",
                     id="due-ARI"),
        pytest.param(record(renew_before=45), days(46), "due", "renew_before = 45 days",
                     id="due-override"),
        pytest.param(uploaded(90), days(80), "expiring", "not be renewed automatically",
                     id="expiring-uploaded"),
        pytest.param(manual(90), days(80), "expiring", "not be renewed automatically",
                     id="expiring-manual"),
        pytest.param(record(90), days(90), "expired", "expired 2025-05-30", id="expired"),
        pytest.param(uploaded(90), days(95), "expired", "expired", id="expired-uploaded"),
        pytest.param(record(current=False, order=order("pending")), days(0), "pending order",
                     "order is pending", id="pending-first-order"),
        pytest.param(record(90, order=order("ready")), days(10), "pending order",
                     "renewal order is ready", id="pending-renewal-order"),
        pytest.param(record(90, order=order("ready")), days(61), "due", "renewal due",
                     id="due-beats-pending-order"),
        pytest.param(record(current=False, order=order("pending", expires=T0 + days(7))),
                     days(6), "pending order", "order is pending", id="pending-before-expiry"),
        pytest.param(record(current=False, order=order("pending", expires=T0 + days(7))),
                     days(7), "order expired", "order expired 2025-03-08 12:00 UTC",
                     id="first-order-expired"),
        pytest.param(record(90, order=order("ready", expires=T0 + days(7))), days(10),
                     "order expired", "renewal order expired", id="renewal-order-expired"),
        pytest.param(record(current=False, order=order("invalid", "CAA forbids")), days(0),
                     "failed", "CAA forbids", id="failed-first-order"),
        pytest.param(record(current=False), days(0), "failed", "no certificate", id="failed-empty"),
        pytest.param(record(90, order=order("invalid", "unauthorized")), days(10), "failed",
                     "unauthorized", id="failed-renewal-order"),
        pytest.param(record(90, renewal={"failures": 1, "last_attempt": T0 + days(61),
                                         "last_error": "timeout"}),
                     days(62), "failed", "renewal failed: timeout", id="failed-renewal"),
        pytest.param(record(90, revoked=True), days(10), "revoked", "revoked", id="revoked"),
        pytest.param(uploaded(90, revoked=True), days(95), "revoked", "revoked",
                     id="revoked-beats-expired"),
    ],
)  # fmt: skip
def test_status_of_states(cert: CertRecord, now: timedelta, state: str, reason: str) -> None:
    status = status_of(cert, T0 + now, NOTICE)
    assert status.state == state
    assert reason in status.reason
    assert status.state in (
        "valid", "due", "expiring", "expired", "pending order", "order expired", "failed",
        "revoked",
    )  # fmt: skip
    if cert.current is None:
        assert (status.days_left, status.due_at) == (None, None)
    else:
        assert status.days_left == pytest.approx((cert.current.not_after - (T0 + now)) / DAY)


def test_status_due_at_reports_the_renewal_point() -> None:
    assert status_of(record(90), T0 + days(10), NOTICE).due_at == T0 + days(60)
    assert status_of(record(6), T0, NOTICE).due_at == T0 + days(3)


def test_invalid_order_without_failures_follows_the_due_point() -> None:
    cert = record(90, order=order("invalid", "unauthorized"))
    assert not decide(cert, T0 + days(10), NOTICE).renew
    assert decide(cert, T0 + days(60), NOTICE).renew


# --- properties ---------------------------------------------------------------------------


INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
LIFETIMES = st.integers(min_value=3600, max_value=400 * 86400).map(lambda s: timedelta(seconds=s))


@settings(max_examples=300, deadline=None)
@given(not_before=INSTANTS, lifetime=LIFETIMES)
def test_renewal_point_strictly_inside_validity(not_before: datetime, lifetime: timedelta) -> None:
    not_after = not_before + lifetime
    point = renewal_point(not_before, not_after)
    assert not_before < point < not_after
    window = notice_window(not_before, not_after, NOTICE)
    assert timedelta(0) < window <= lifetime / 3


@settings(max_examples=300, deadline=None)
@given(
    not_before=INSTANTS,
    lifetime=LIFETIMES,
    notice_days=st.floats(min_value=0, max_value=400),
    method=st.sampled_from(["standalone", "webroot", "rfc2136", "hook"]),
)
def test_fresh_certificate_never_due_at_not_before(
    not_before: datetime, lifetime: timedelta, notice_days: float, method: str
) -> None:
    cert = record(not_before=not_before, method=method)
    assert cert.current is not None
    cert.current.not_after = not_before + lifetime
    decision = decide(cert, not_before, notice_days)
    assert (decision.renew, decision.notify) == (False, False)
    assert status_of(cert, not_before, notice_days).state == "valid"
    # and the same holds for a certificate that needs a human: not "expiring" from birth
    human = uploaded(not_before=not_before)
    assert human.current is not None
    human.current.not_after = not_before + lifetime
    assert decide(human, not_before, notice_days).notify is False
    assert status_of(human, not_before, notice_days).state == "valid"


@settings(max_examples=200, deadline=None)
@given(
    not_before=INSTANTS,
    lifetime=LIFETIMES,
    fraction=st.floats(min_value=0, max_value=1),
)
def test_automatic_due_iff_past_renewal_point(
    not_before: datetime, lifetime: timedelta, fraction: float
) -> None:
    cert = record(not_before=not_before)
    assert cert.current is not None
    cert.current.not_after = not_before + lifetime
    now = not_before + lifetime * fraction
    point = renewal_point(not_before, not_before + lifetime)
    assert decide(cert, now, NOTICE).renew is (now >= point)
