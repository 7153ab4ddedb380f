"""A certificate at a glance: what `list` shows of it and when renew-due can pass it by.

Computed once from a record for *all* time, so the store's index can keep it
next to the record (store/index.py) and `list` and `renew-due` over thousands of
certificates read these few fields instead of parsing and deciding on every
record. Nothing here is a second policy: the state and the "nothing to do" answer
at each moment are what `status_of`, `decide` and `ari_check_due` (policy/timing.py)
say at that moment. Those are piecewise constant in time: each compares `now` with
instants of the record (its dates, its due point, its notice window, its back-off).
So they are asked once at each such instant, and what they say holds until the next
one; tests/test_glance.py checks that at random moments of random records.

A summary is JSON (it is stored as such) and is only valid for the notice days and
the policy code it was made with: `summary_key` names both.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from certctl.models import SOURCE_UPLOAD, CertRecord

FORMAT = 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

Summary = dict[str, Any]


def summary_key(notice_days: float) -> str:
    """What a stored summary must have been made with to be used: this policy, these days."""
    import zlib  # a checksum of the policy's source: an upgraded certctl re-derives every summary
    from pathlib import Path

    here = Path(__file__)
    sources = here.with_name("timing.py").read_bytes() + here.read_bytes()
    return f"{FORMAT}:{zlib.crc32(sources):08x}:{notice_days!r}"


def micros(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch (exact, comparable as ints)."""
    return (moment - EPOCH) // MICROSECOND


def instants(record: CertRecord, notice_days: float) -> list[datetime]:
    """Every instant at which the policy's answer for this record can change, sorted.

    All the record's own dates (certificate, order, renewal and notice state), and
    the points the policy derives from them: the due point, the start of the notice
    window and the end of the current back-off.
    """
    from certctl.policy import timing  # only to make summaries: list reads them

    found: set[datetime] = set()
    if record.order is not None and record.order.expires is not None:
        found.add(record.order.expires)
    for state in (record.renewal, record.notices):
        found.update(_datetimes(state))
    current = record.current
    if current is not None:
        found.update((current.not_before, current.not_after))
        found.add(timing.due_at(record, timing.ari_of(record))[0])
        window = timing.notice_window(current.not_before, current.not_after, notice_days)
        found.add(current.not_after - window)
        last = record.renewal.get("last_attempt")
        failures = timing.failures_of(record)
        if failures and isinstance(last, datetime):
            found.add(last + timing.backoff_delay(failures))
    return sorted(found)


def _datetimes(value: Any) -> list[datetime]:
    if isinstance(value, datetime):
        return [value]
    if isinstance(value, dict):
        return [d for v in value.values() for d in _datetimes(v)]
    if isinstance(value, list):
        return [d for v in value for d in _datetimes(v)]
    return []


def quiet(record: CertRecord, now: datetime, notice_days: float) -> bool:
    """True when renew-due has nothing to do for this record at `now`: no renewal, no
    notice, no ARI to refresh (its pre-filter, before notices already sent are counted)."""
    from certctl.policy import timing  # only to make summaries: list reads them

    if record.current is None:
        return True
    if timing.ari_check_due(record, now):
        return False
    decision = timing.decide(record, now, notice_days)
    return not (decision.renew or decision.notify)


@dataclass(frozen=True)
class Summarizer:
    """Summaries under one notice-days setting, for a run at `now` (a store.Summarizer)."""

    notice_days: float
    now: datetime

    @property
    def key(self) -> str:
        """What a kept summary must have been made with: this policy, these notice days."""
        return summary_key(self.notice_days)

    def __call__(self, record: CertRecord) -> Summary:
        """The summary for all time (what the index keeps)."""
        return summarize(record, self.notice_days)

    def at_now(self, record: CertRecord) -> Summary:
        """A summary true at `now` only: one policy answer instead of one per instant."""
        return summarize(record, self.notice_days, only=self.now)


def summarize(record: CertRecord, notice_days: float, only: datetime | None = None) -> Summary:
    """The record's summary: its `list` row, its state over time and its quiet spans
    (with `only`: the state and quietness at that moment, as if for all time)."""
    from certctl.policy import timing  # only to make summaries: list reads them

    points = [] if only is not None else instants(record, notice_days)
    # a moment in each span between consecutive instants: the first one before them all
    starts: list[datetime | None] = [None, *points]
    probes = [only or (points[0] - MICROSECOND if points else EPOCH), *points]
    states: list[list[Any]] = []
    spans: list[list[int | None]] = []
    for start, probe in zip(starts, probes, strict=True):
        at = None if start is None else micros(start)
        status = timing.status_of(record, probe, notice_days)
        if not states or states[-1][1:] != [status.state, status.reason]:
            states.append([at, status.state, status.reason])
        is_quiet = quiet(record, probe, notice_days)
        if spans and spans[-1][1] is None:  # the last span is still open
            if not is_quiet:
                spans[-1][1] = at
        elif is_quiet:
            spans.append([at, None])
    current = record.current
    return {
        "domains": record.domains,
        "issuer": current.issuer if current else None,
        "not_after": current.not_after.isoformat() if current else None,
        "method": (
            "manual (upload)" if record.source == SOURCE_UPLOAD else record.validation.label
        ),
        "source": record.source,
        "profile": record.profile,
        "live_version": current.version if current else None,
        "states": states,
        "quiet": spans,
    }


def well_formed(summary: Any) -> bool:
    """True when a stored summary has the shape `summarize` gives (a damaged one is redone)."""
    try:
        states, spans = summary["states"], summary["quiet"]
        not_after = summary["not_after"]
        if not_after is not None:
            datetime.fromisoformat(not_after)
        return (
            len(summary) == len(_FIELDS)
            and all(isinstance(summary[k], t) for k, t in _FIELDS.items())
            and all(isinstance(d, str) for d in summary["domains"])
            and bool(states)
            and states[0][0] is None
            and all(len(s) == 3 and isinstance(s[1], str) and isinstance(s[2], str) for s in states)
            and all(type(s[0]) is int for s in states[1:])
            and all(len(span) == 2 for span in spans)
            and all(v is None or type(v) is int for span in spans for v in span)
        )
    except (TypeError, ValueError, KeyError, IndexError):
        return False


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "domains": list,
    "issuer": (str, type(None)),
    "not_after": (str, type(None)),
    "method": str,
    "source": str,
    "profile": (str, type(None)),
    "live_version": (int, type(None)),
    "states": list,
    "quiet": list,
}


def state_at(summary: Summary, now: datetime) -> tuple[str, str]:
    """The (state, reason) of `status_of` at `now`, from the summary."""
    states = summary["states"]
    t = micros(now)
    starts = [s[0] for s in states[1:]]  # states[0] starts before every instant
    state = states[bisect.bisect_right(starts, t)]
    return str(state[1]), str(state[2])


def quiet_at(spans: list[Any] | None, now: datetime) -> bool:
    """`quiet(record, now)` from the summary's quiet spans; False for none or damaged ones
    (then the record itself is asked)."""
    if spans is None:
        return False
    t = micros(now)
    try:
        return any(
            (start is None or start <= t) and (end is None or t < end) for start, end in spans
        )
    except (TypeError, ValueError):
        return False
