"""`certctl check` (monitoring-plugins convention) and `certctl metrics` (Prometheus text).

Both read the store only. `check` folds every certificate into one status
line with perfdata (Nagios, Icinga, Sensu, Checkmk: exit 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN); `metrics` writes the text exposition format 0.0.4 that
node_exporter's textfile collector reads. Probes run only when asked for.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from certctl.context import Context
from certctl.errors import BadInput, CertctlError, OperationFailed
from certctl.models import CertRecord
from certctl.policy import timing

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
_SEVERITY = {OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3}  # the worst wins: CRITICAL first


def worst(statuses: list[int]) -> int:
    """The overall status: CRITICAL over WARNING over UNKNOWN over OK."""
    return max(statuses, key=_SEVERITY.__getitem__, default=OK)


@dataclass
class CertCheck:
    """One certificate's status, the reasons, and its perfdata."""

    name: str
    status: int
    reasons: list[str] = field(default_factory=list)
    days_left: float | None = None
    warning: float | None = None
    critical: float | None = None

    def to_json(self) -> dict[str, Any]:
        """One entry of `check --json`."""
        return {
            "name": self.name,
            "status": STATUS_NAMES[self.status],
            "days_left": None if self.days_left is None else round(self.days_left, 2),
            "warning_days": self.warning,
            "critical_days": self.critical,
            "reasons": self.reasons,
        }


@dataclass
class CheckReport:
    """The plugin's answer: status, one summary line, perfdata, details."""

    status: int
    summary: str
    checks: list[CertCheck]

    @property
    def perfdata(self) -> str:
        """`'name'=days;warn;crit;0;` per certificate (days left; no unit of measure)."""
        items = []
        for c in self.checks:
            if c.days_left is None:
                continue
            label = c.name.replace("'", "_")
            items.append(f"'{label}'={c.days_left:.2f};{_num(c.warning)};{_num(c.critical)};;")
        return " ".join(items)

    def lines(self) -> list[str]:
        """The status line with perfdata, then one line per certificate that is not OK."""
        first = f"CERTCTL {STATUS_NAMES[self.status]} - {self.summary}"
        if self.perfdata:
            first += f" | {self.perfdata}"
        details = [
            f"{STATUS_NAMES[c.status]}: {c.name}: {'; '.join(c.reasons)}"
            for c in self.checks
            if c.status != OK
        ]
        return [first, *details]

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `check --json`."""
        return {
            "status": STATUS_NAMES[self.status],
            "exit_code": self.status,
            "summary": self.summary,
            "perfdata": self.perfdata,
            "certificates": [c.to_json() for c in self.checks],
        }


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def unknown(message: str) -> CheckReport:
    """The plugin's answer when it cannot tell (store unreadable, bad input)."""
    return CheckReport(UNKNOWN, message, [])


def check(
    ctx: Context,
    names: list[str],
    *,
    warning: float,
    critical: float,
    probe: bool = False,
    timeout: float = 5.0,
) -> CheckReport:
    """Fold the certificates `names` (all when empty) into one monitoring status."""
    if critical > warning:
        raise BadInput(
            f"--critical {critical:g} is above --warning {warning:g}: give a smaller --critical"
        )
    records, checks = _records(ctx, names)
    now = ctx.now()
    for record in records:
        checks.append(_check_one(record, now, warning, critical))
    if probe:
        from certctl.ops.probe import probe_records, stale_message

        by_name = {c.name: c for c in checks}
        for result in probe_records(ctx, [r for r in records if r.endpoints], timeout=timeout):
            if result.ok:
                continue
            entry = by_name[result.name]
            status = WARNING if result.status == "unreachable" else CRITICAL
            entry.status = worst([entry.status, status])
            entry.reasons.append(stale_message(result))
    if not checks:
        return unknown("no certificates in the store" if not names else "nothing to check")
    status = worst([c.status for c in checks])
    return CheckReport(status, _summary(checks, status), checks)


def _records(ctx: Context, names: list[str]) -> tuple[list[CertRecord], list[CertCheck]]:
    """The records to check, and an UNKNOWN entry for each that cannot be read."""
    found: list[tuple[str, CertRecord | CertctlError]] = []
    if names:
        for name in names:
            try:
                found.append((name, ctx.store.read(name)))
            except CertctlError as e:
                found.append((name, e))
    else:
        found = [(n, r) for n, r in ctx.store.records()]
    records, broken = [], []
    for name, record in found:
        if isinstance(record, CertRecord):
            if record.current is not None or names:
                records.append(record)
        else:
            broken.append(CertCheck(name, UNKNOWN, [str(record)]))
    return records, broken


def _check_one(record: CertRecord, now: datetime, warning: float, critical: float) -> CertCheck:
    """One certificate against the thresholds (capped at a third / sixth of its lifetime)."""
    current = record.current
    if current is None:
        return CertCheck(record.name, UNKNOWN, ["no certificate yet (an order is pending)"])
    lifetime = timing.lifetime_days(current.not_before, current.not_after)
    warn = round(min(warning, lifetime / 3), 2)
    crit = round(min(critical, lifetime / 6), 2)
    days = (current.not_after - now).total_seconds() / 86400
    entry = CertCheck(record.name, OK, [], days, warn, crit)
    if record.revoked:
        entry.status = CRITICAL
        entry.reasons.append("revoked")
    if days <= 0:
        entry.status = CRITICAL
        entry.reasons.append(f"expired {current.not_after:%Y-%m-%d %H:%M} UTC")
    elif days < crit:
        entry.status = CRITICAL
        entry.reasons.append(f"expires in {days:.1f} days (critical below {crit:g})")
    elif days < warn:
        entry.status = worst([entry.status, WARNING])
        entry.reasons.append(f"expires in {days:.1f} days (warning below {warn:g})")
    failures = timing.failures_of(record)
    if failures:
        entry.status = worst([entry.status, WARNING])
        error = record.renewal.get("last_error") or "see certctl show"
        entry.reasons.append(f"{failures} renewal attempt(s) failed: {error}")
    return entry


def _summary(checks: list[CertCheck], status: int) -> str:
    if status == OK:
        dated = [c for c in checks if c.days_left is not None]
        soonest = min(dated, key=lambda c: c.days_left or 0.0)
        return (
            f"{len(checks)} certificate(s) fine, next expiry {soonest.name} in"
            f" {soonest.days_left or 0.0:.1f} days"
        )
    bad = [c for c in checks if c.status == status]
    first = f"{bad[0].name}: {bad[0].reasons[0]}" if bad[0].reasons else bad[0].name
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"{first}{more}"


# ---- Prometheus text exposition -------------------------------------------------------

_HELP = {
    "certctl_certificate_expiry_timestamp_seconds": "When the live certificate expires (notAfter).",
    "certctl_certificate_not_before_timestamp_seconds": "When the live certificate became valid.",
    "certctl_certificate_renewal_due_timestamp_seconds": "When the live certificate is due for"
    " renewal (ARI, renew_before or the lifetime rule).",
    "certctl_certificate_live_version": "The live version number.",
    "certctl_certificate_last_renewal_success_timestamp_seconds": "When the last renewal"
    " succeeded.",
    "certctl_certificate_last_renewal_failure_timestamp_seconds": "When the last renewal failed.",
    "certctl_certificate_renewal_consecutive_failures": "Failed renewals of the live certificate"
    " since its last success.",
    "certctl_certificate_damaged": "1 when the certificate's metadata cannot be read.",
    "certctl_endpoint_up": "1 when the endpoint completed a TLS handshake.",
    "certctl_endpoint_serves_live": "1 when the endpoint serves the live version with its chain.",
    "certctl_endpoint_probe_duration_seconds": "How long the probe of the endpoint took.",
}


def metrics(ctx: Context, *, probe: bool = False, timeout: float = 5.0) -> str:
    """The store's state (and, with `probe`, each endpoint's) as Prometheus text."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in _HELP}
    records: list[CertRecord] = []
    for name, record in ctx.store.records():
        if not isinstance(record, CertRecord):
            samples["certctl_certificate_damaged"].append(({"name": name}, 1))
            continue
        records.append(record)
        labels = {"name": name}
        current = record.current
        if current is not None:
            due, _ = timing.due_at(record, timing.ari_of(record))
            samples["certctl_certificate_expiry_timestamp_seconds"].append(
                (labels, current.not_after.timestamp())
            )
            samples["certctl_certificate_not_before_timestamp_seconds"].append(
                (labels, current.not_before.timestamp())
            )
            samples["certctl_certificate_renewal_due_timestamp_seconds"].append(
                (labels, due.timestamp())
            )
            samples["certctl_certificate_live_version"].append((labels, current.version))
        for key, metric in (
            ("last_renewed", "certctl_certificate_last_renewal_success_timestamp_seconds"),
            ("last_failed", "certctl_certificate_last_renewal_failure_timestamp_seconds"),
        ):
            when = record.renewal.get(key)
            if isinstance(when, datetime):
                samples[metric].append((labels, when.timestamp()))
        samples["certctl_certificate_renewal_consecutive_failures"].append(
            (labels, timing.failures_of(record))
        )
    if probe:
        from certctl.ops.probe import probe_records

        for result in probe_records(ctx, [r for r in records if r.endpoints], timeout=timeout):
            labels = {"name": result.name, "endpoint": result.endpoint.label}
            samples["certctl_endpoint_up"].append((labels, result.status != "unreachable"))
            samples["certctl_endpoint_serves_live"].append((labels, result.ok))
            samples["certctl_endpoint_probe_duration_seconds"].append(
                (labels, round(result.seconds, 3))
            )
    lines = []
    for metric, entries in samples.items():
        if not entries:
            continue
        lines.append(f"# HELP {metric} {_HELP[metric]}")
        lines.append(f"# TYPE {metric} gauge")
        for labels, value in entries:
            shown = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{metric}{{{shown}}} {_value(value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _escape(value: str) -> str:
    """A label value as the exposition format quotes it: backslash, quote, newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(value: float) -> str:
    if isinstance(value, bool) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def write_metrics(path: Path, text: str) -> None:
    """Replace `path` atomically (a temp name that is no *.prom, fsync, rename), mode 0644."""
    from certctl.store.files import fsync_dir, write_new

    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        write_new(tmp, text.encode(), 0o644)
        os.replace(tmp, path)
        fsync_dir(directory)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OperationFailed(f"cannot write metrics to {path}: {e.strerror or e}") from None
