"""The `renew-due` use case: renew what can be renewed, warn about the rest.

Built for cron: every certificate is handled under its own lock in a bounded
worker pool, so one slow CA or failing domain holds up nothing else, and two
runs never renew the same certificate. Decisions come from the pure policy in
timing.py; this module fetches inputs and acts.
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from certctl.context import Context
from certctl.errors import BadInput, CertctlError, ExitCode, LockHeld, NotFound, StoreError
from certctl.models import SOURCE_UPLOAD, CertRecord
from certctl.notify import Channel, Notice, channels_from_config
from certctl.policy import glance, hints, timing
from certctl.store.contract import Glance

ARI_RECHECK_ON_ERROR = timedelta(hours=1)
ARI_RECHECK_WITHOUT_ARI = timedelta(days=1)

log = logging.getLogger(__name__)


@dataclass
class RenewOptions:
    """How `renew-due` was invoked."""

    dry_run: bool = False
    force: list[str] = field(default_factory=list)
    parallel: int = 4
    notice_days: float | None = None
    timeout: float = 120.0
    probe_wait: float = 15.0  # seconds the endpoints get to serve a renewed certificate
    probe: bool = True  # probe a renewed certificate's endpoints


@dataclass
class Outcome:
    """What happened to one certificate."""

    name: str
    action: str  # renewed | failed | notified | would-renew | would-notify | locked | taken
    # | damaged; "taken": another host of a fleet holds the lock (silent, exit 0)
    detail: str = ""
    serial: str | None = None
    not_after: datetime | None = None
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of one `renew-due --json` entry."""
        return {
            "name": self.name,
            "action": self.action,
            "detail": self.detail,
            "serial": self.serial,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "errors": self.errors,
        }


@dataclass
class RenewReport:
    """Everything renew-due did (empty when nothing needed doing)."""

    checked: int
    outcomes: list[Outcome]

    @property
    def exit_code(self) -> ExitCode:
        """1 when anything failed, else 3 when a lock was held or the CA said wait, else 0."""
        if any(o.action in ("failed", "damaged") or o.errors for o in self.outcomes):
            return ExitCode.FAILED
        if any(o.action in ("locked", "deferred") for o in self.outcomes):
            return ExitCode.NOT_YET
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `renew-due --json`."""
        return {
            "checked": self.checked,
            "exit_code": int(self.exit_code),
            "certificates": [o.to_json() for o in self.outcomes],
        }


def renew_due(ctx: Context, options: RenewOptions) -> RenewReport:
    """Renew every due certificate, notify about the rest; never the same one twice."""
    notice_days = (
        options.notice_days if options.notice_days is not None else (ctx.settings.notice_days)
    )
    channels = channels_from_config(ctx.settings.raw)  # bad config: exit 2 before acting
    labels = [c.label for c in channels]
    for forced in options.force:
        try:
            problem = _cannot_force(ctx.store.read(forced))  # NotFound: the usual message
        except StoreError:
            continue  # damaged: reported below with the others, which still run
        if problem:
            raise BadInput(problem)  # before anything was done: exit 2
    now = ctx.now()
    candidates: dict[str, int | None] = {}
    outcomes: list[Outcome] = []
    # summaries are kept for the configured notice window; another one given on the
    # command line is a one-off: each record is decided on, nothing is kept for it
    same = notice_days == ctx.settings.notice_days
    glances = ctx.store.glances(glance.Summarizer(notice_days, now) if same else None)
    for found in glances:
        name = found.name
        if name not in options.force and glance.quiet_at(found.quiet, now):
            continue  # nothing to do now, by its summary: the record is not even parsed
        try:
            record = found.load()
        except NotFound:
            continue  # a first order interrupted before its metadata was written
        except CertctlError as e:
            outcomes.append(Outcome(name, "damaged", str(e)))
            continue
        try:
            wanted = name in options.force or _needs_attention(record, now, notice_days, labels)
        except Exception as e:  # one certificate never stops the others
            outcomes.append(Outcome(name, "failed", _unexpected(name, e)))
            continue
        if wanted:
            candidates[name] = record.current.version if record.current else None
    if candidates:
        workers = max(1, min(options.parallel, len(candidates)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="renew") as pool:
            futures = [
                pool.submit(_handle, ctx, name, seen, options, notice_days, channels)
                for name, seen in candidates.items()
            ]
            outcomes.extend(f.result() for f in futures)
    outcomes = [o for o in outcomes if o.action != "nothing"]
    outcomes += _lagging_hosts(ctx, glances, now)
    outcomes.sort(key=lambda o: o.name)
    return RenewReport(checked=len(glances), outcomes=outcomes)


LAG = timedelta(days=1)  # a host this long behind the live version is a warning


def _lagging_hosts(ctx: Context, glances: list[Glance], now: datetime) -> list[Outcome]:
    """A warning per host that still serves an older version a day after the live one came."""
    fleet = ctx.store.all_deployments()
    found = []
    for item in glances:
        name = item.name
        if name not in fleet:
            continue
        try:
            record = item.load()
        except CertctlError:
            continue  # reported above
        if record.current is None:
            continue
        live = record.current
        if now - live.not_before < LAG:
            continue
        behind = [d for d in fleet[name] if d.version < live.version]
        if behind:
            hosts = ", ".join(f"{d.host} (version {d.version})" for d in behind)
            found.append(
                Outcome(
                    name,
                    "lagging",
                    f"{hosts} still serve(s) an older version than the live {live.version}"
                    f" (issued {live.not_before:%Y-%m-%d %H:%M} UTC): run 'certctl deploy' there",
                )
            )
    return found


def _needs_attention(
    record: CertRecord, now: datetime, notice_days: float, labels: list[str]
) -> bool:
    """Cheap pre-filter without the lock: due, notice-worthy, or ARI to refresh."""
    if record.current is None:
        return False
    if timing.ari_check_due(record, now):
        return True
    decision = timing.decide(record, now, notice_days)
    return decision.renew or (decision.notify and timing.notice_due(record, now.date(), labels))


def _cannot_force(record: CertRecord) -> str | None:
    """Why `--force NAME` cannot renew this certificate unattended, and what to do; or None."""
    name = record.name
    if record.source == SOURCE_UPLOAD:
        return (
            f"cannot renew {name!r}: it was uploaded, so certctl cannot obtain it;"
            f" {_what_to_do(record)}"
        )
    if not record.validation.automatic:
        return (
            f"cannot renew {name!r} unattended: its validation ({record.validation.label})"
            f" needs a human; {_what_to_do(record)}"
        )
    if record.current is None:
        return (
            f"cannot renew {name!r}: it has no certificate yet; finish its order with"
            f" {hints.verify(name)} and {hints.issue(name)}"
        )
    return None


def _unexpected(name: str, error: Exception) -> str:
    """The one line for an error certctl did not foresee (the traceback with --debug)."""
    log.debug("%s: unexpected error", name, exc_info=error)
    return f"internal error ({type(error).__name__}: {str(error)[:200]}); rerun with --debug"


def _handle(
    ctx: Context,
    name: str,
    seen_version: int | None,
    options: RenewOptions,
    notice_days: float,
    channels: list[Channel],
) -> Outcome:
    """One certificate, under its lock: refresh ARI, decide, renew or notify."""
    try:
        with ctx.store.lock(name):
            record = ctx.store.read(name)  # re-read: another run may have renewed it
            version = record.current.version if record.current else None
            if version != seen_version:
                return Outcome(name, "nothing")  # renewed by a concurrent run meanwhile
            now = ctx.now()
            if timing.ari_check_due(record, now) and not options.dry_run:
                _refresh_ari(ctx, record, now)
            decision = timing.decide(record, now, notice_days, force=name in options.force)
            if options.dry_run:
                if decision.renew:
                    return Outcome(name, "would-renew", decision.reason)
                labels = [c.label for c in channels]
                if decision.notify and timing.notice_due(record, now.date(), labels):
                    return Outcome(name, "would-notify", decision.reason)
                return Outcome(name, "nothing")
            if decision.renew:
                return _renew(ctx, record, options, notice_days, channels)
            if decision.notify:
                return _notify(ctx, record, now, notice_days, channels, decision.reason)
            return Outcome(name, "nothing")
    except LockHeld as e:
        if ctx.store.backend == "postgresql":
            # a fleet: another host holds it and does the work (and reports its failures);
            # the same cron line on every host must stay silent (exit 0)
            return Outcome(name, "taken", str(e))
        return Outcome(name, "locked", str(e))
    except CertctlError as e:
        return Outcome(name, "failed", str(e))
    except Exception as e:  # one certificate never stops the others
        return Outcome(name, "failed", _unexpected(name, e))


def _refresh_ari(ctx: Context, record: CertRecord, now: datetime) -> None:
    """Fetch the CA's renewal window (RFC 9773) and keep it, with when to ask again."""
    assert record.current is not None
    live = ctx.store.read_live(record.name)
    if live is None:
        return
    from cryptography import x509

    try:
        x509.load_pem_x509_certificate(live["cert.pem"])
    except ValueError:
        raise StoreError(
            f"the live cert.pem of {record.name!r} is not a readable certificate:"
            " run 'certctl doctor' and restore it from a backup"
        ) from None
    try:
        session = ctx.acme(record.server)
        info = session.renewal_info(live["cert.pem"])
    except CertctlError as e:
        ctx.reporter.warn(f"{record.name}: renewal information unavailable ({e})")
        retry_at = getattr(e, "retry_at", None)  # a 429/503 said when: not before then
        record.renewal["ari_next_check"] = max(now + ARI_RECHECK_ON_ERROR, retry_at or now)
        ctx.store.write(record)
        return
    if info is None:
        record.renewal["ari_next_check"] = now + ARI_RECHECK_WITHOUT_ARI
    else:
        start, end, retry_at = info
        old = timing.ari_of(record)
        if old is None or (old.start, old.end) != (start, end):
            # RFC 9773 §4.2: pick a uniformly random moment in the (new) window.
            pick = timing.ari_pick(start, end, random.random())
            record.renewal.update(ari_start=start, ari_end=end, ari_pick=pick)
        record.renewal["ari_next_check"] = max(retry_at, now + timedelta(minutes=1))
    ctx.store.write(record)


def _renew(
    ctx: Context,
    record: CertRecord,
    options: RenewOptions,
    notice_days: float,
    channels: list[Channel],
) -> Outcome:
    """Order → verify → issue unattended; the old certificate stays live until then."""
    from certctl.acme.session import RateLimited
    from certctl.ops import obtain
    from certctl.ops.hooks import run_deploy_hook

    now = ctx.now()
    replaces = _replaces(ctx, record)
    try:
        report = obtain.issue_locked(ctx, record, options.timeout, replaces=replaces)
    except RateLimited as e:
        # RFC 8555 §6.6: the CA said when to come back. Record it (timing.decide and the ARI
        # check honour it) and end this certificate's turn now rather than sleep until then.
        record = ctx.store.read(record.name)
        record.renewal.update(
            not_before_retry=e.retry_at, last_attempt=now, last_error=str(e)[:500]
        )
        ctx.store.write(record)
        return Outcome(record.name, "deferred", str(e))
    except CertctlError as e:
        record = ctx.store.read(record.name)  # keep what issue_locked persisted (order state)
        failures = int(record.renewal.get("failures", 0)) + 1
        record.renewal.update(
            failures=failures, last_attempt=now, last_failed=now, last_error=str(e)[:500]
        )
        if record.order is not None and record.order.status == "invalid":
            record.order = None  # a failed order is spent; the next attempt places a new one
        ctx.store.write(record)
        outcome = Outcome(record.name, "failed", str(e))
        notified = _notify(ctx, record, now, notice_days, channels, f"renewal failed: {e}")
        outcome.errors.extend(notified.errors)
        return outcome
    record = ctx.store.read(record.name)
    for key in (
        "failures",
        "last_error",
        "not_before_retry",
        "ari_start",
        "ari_end",
        "ari_pick",
        "ari_next_check",
    ):
        record.renewal.pop(key, None)
    record.renewal["last_renewed"] = now
    ctx.store.write(record)
    how = "new order" if report.reordered else "resumed the stored order"
    outcome = Outcome(
        record.name,
        "renewed",
        f"version {report.version} ({how})",
        serial=report.current.serial,
        not_after=report.current.not_after,
    )
    hook_error = run_deploy_hook(ctx, record)
    if hook_error:
        outcome.errors.append(hook_error)
    if record.endpoints and options.probe:
        _check_served(ctx, record, outcome, options, notice_days, channels)
    return outcome


def _check_served(
    ctx: Context,
    record: CertRecord,
    outcome: Outcome,
    options: RenewOptions,
    notice_days: float,
    channels: list[Channel],
) -> None:
    """Probe the renewed certificate's endpoints; a stale one fails the renewal and notifies."""
    from certctl.notify.channel import STALE
    from certctl.ops.probe import stale_message, wait_until_served

    results = wait_until_served(ctx, record, window=options.probe_wait)
    stale = [stale_message(r) for r in results if not r.ok]
    if not stale:
        outcome.detail += f"; served at {len(results)} endpoint(s)"
        return
    outcome.errors.extend(stale)
    reason = f"renewed to version {record.current.version if record.current else '?'}, but " + (
        "; ".join(stale)
    )
    notified = _notify(ctx, record, ctx.now(), notice_days, channels, reason, state=STALE)
    outcome.errors.extend(notified.errors)


def _replaces(ctx: Context, record: CertRecord) -> str | None:
    """RFC 9773 §5: the ARI identifier of the certificate this order replaces."""
    if timing.ari_of(record) is None:
        return None
    live = ctx.store.read_live(record.name)
    if live is None:
        return None
    from cryptography import x509

    from certctl.acme.session import ari_cert_id

    try:
        return ari_cert_id(x509.load_pem_x509_certificate(live["cert.pem"]))
    except (ValueError, CertctlError):
        return None  # no `replaces`: the order is placed without it


def _notify(
    ctx: Context,
    record: CertRecord,
    now: datetime,
    notice_days: float,
    channels: list[Channel],
    reason: str,
    state: str | None = None,
) -> Outcome:
    """Send one notice through each channel that has not accepted one today.

    A channel counts as notified only once it accepted the notice: one that failed
    is tried again by the next run, one that succeeded is not sent again that day.
    """
    today = now.date()
    labels = [c.label for c in channels]
    if not timing.notice_due(record, today, labels):
        return Outcome(record.name, "nothing")
    due = set(timing.channels_due(record, today, labels))
    status = timing.status_of(record, now, notice_days)
    current = record.current
    notice = Notice(
        name=record.name,
        domains=record.domains,
        not_after=current.not_after if current else None,
        days_left=status.days_left,
        state=state or status.state,
        reason=reason,
        action=_what_to_do(record),
    )
    outcome = Outcome(record.name, "notified", f"{notice.subject}: {reason}")
    delivered = {k: v for k, v in record.notices.get("delivered", {}).items() if k in labels}
    for channel in channels:
        if channel.label not in due:
            continue  # it accepted today's notice in an earlier run
        try:
            channel.send(notice)
        except CertctlError as e:
            outcome.errors.append(str(e))
            continue
        except Exception as e:  # a channel's surprise must not lose the others
            log.debug("%s: %s failed", record.name, channel.label, exc_info=e)
            outcome.errors.append(f"{channel.label} failed: internal error ({type(e).__name__})")
            continue
        delivered[channel.label] = now
    record.notices.update(last_sent=now, last_reason=reason[:300], delivered=delivered)
    record.notices["channels"] = [
        label for label in labels if label not in timing.channels_due(record, today, labels)
    ]
    ctx.store.write(record)
    return outcome


def _what_to_do(record: CertRecord) -> str:
    if record.source == SOURCE_UPLOAD or not record.validation.automatic:
        return hints.replace_text(record)
    return "fix the cause above and wait for the next run, or run: " + hints.renew_now(record.name)


def random_delay(seconds: float, sleep: Any = time.sleep) -> float:
    """Sleep a random time up to `seconds` (spreads fleets; Let's Encrypt asks for it)."""
    delay = random.uniform(0, seconds) if seconds > 0 else 0.0
    if delay:
        sleep(delay)
    return delay
