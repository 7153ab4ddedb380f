"""All terminal output: tables, JSON, progress and warnings (rich, imported lazily)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from certctl.cli.output import is_terminal, write_err, write_out, write_out_bytes, writing

if TYPE_CHECKING:
    from rich.console import Console

    from certctl.ops.inspect import ExportReport, RemoveReport, ShowReport
    from certctl.ops.listing import ListEntry
    from certctl.ops.obtain import IssueReport, OrderReport, VerifyReport
    from certctl.ops.probe import ProbeReport
    from certctl.ops.renew import RenewReport
    from certctl.ops.upload import UploadReport

from certctl.models import Challenge
from certctl.policy import hints

_consoles: dict[tuple[bool, int], Console] = {}


def console(stderr: bool = False) -> Console:
    """A rich console on stdout or stderr; colour only on a terminal, NO_COLOR honoured."""
    stream = sys.stderr if stderr else sys.stdout
    key = (stderr, id(stream))  # in-process runs (tests, embedding) swap the streams
    if key not in _consoles:
        from rich.console import Console

        _consoles[key] = Console(
            file=stream,
            no_color=bool(os.environ.get("NO_COLOR")),
            highlight=False,
            soft_wrap=True,
            width=None if is_terminal(stream) else 200,
        )
    return _consoles[key]


_MARKUP = re.compile(r"\[/?(?:bold|green|yellow|red|cyan)?\]")


def _fancy() -> bool:
    """Rich (colour, wrapping) only for a terminal; plain fast text for pipes and cron."""
    return is_terminal(sys.stdout) and not os.environ.get("NO_COLOR")


class _Out:
    """Prints lines: through rich on a terminal, as plain text otherwise."""

    def __init__(self) -> None:
        self.fancy = _fancy()

    def print(self, text: str, markup: bool = True) -> None:
        if self.fancy:
            with writing():
                console().print(text, markup=markup)
        else:
            write_out((_MARKUP.sub("", text) if markup else text) + "\n")


def print_json(document: Any) -> None:
    """The one JSON document on stdout."""
    # indented for a person at a terminal; compact (and C-accelerated) for pipes
    indent = 2 if is_terminal(sys.stdout) else None
    write_out(json.dumps(document, indent=indent, default=str) + "\n", flush=True)


class CliReporter:
    """Warnings and progress on stderr; a spinner only on a terminal."""

    def __init__(self, quiet_status: bool = False) -> None:
        self.quiet_status = quiet_status

    def warn(self, message: str) -> None:
        """One warning line on stderr."""
        write_err(f"warning: {message.removeprefix('warning: ')}\n")

    def info(self, message: str) -> None:
        """One progress line on stderr."""
        write_err(message + "\n")

    @contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner on a terminal; one line elsewhere."""
        if is_terminal(sys.stderr) and not self.quiet_status:
            with console(stderr=True).status(message):
                yield
        else:
            yield


def _when(value: datetime | None) -> str:
    """Every date a person reads, in one form: 2026-03-01 12:00 UTC."""
    if not value:
        return "-"
    if value.tzinfo is not None:
        from datetime import UTC

        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _domains(domains: list[str]) -> str:
    """Domains as stored (A-labels), each followed by its U-label form where that differs."""
    from certctl.policy.names import shown_domain

    return ", ".join(shown_domain(d) for d in domains)


def _challenge_lines(challenge: Challenge, indent: str) -> list[str]:
    """What must be published for one challenge: the TXT record, or the URL and content."""
    if challenge.type in ("dns-01", "dns-persist-01"):
        return [
            f"{indent}name:  {challenge.record_name}.",
            f"{indent}type:  TXT",
            f"{indent}value: {challenge.validation}",
        ]
    if challenge.type == "tls-alpn-01":
        return [
            f"{indent}ALPN:    acme-tls/1 (RFC 8737), SNI {challenge.domain}",
            f"{indent}key authorization: {challenge.validation}",
        ]
    return [
        f"{indent}URL:     http://{challenge.host}{challenge.record_name}",
        f"{indent}content: {challenge.validation}",
    ]


def order_report(report: OrderReport) -> None:
    """What to publish, per challenge."""
    out = _Out()
    out.print(f"Order placed for [bold]{report.name}[/] ({_domains(report.domains)})")
    out.print(f"Validation: {report.validation.label}; order expires {_when(report.order.expires)}")
    for challenge in report.order.challenges:
        if challenge.status == "valid":
            out.print(f"\n{challenge.domain}: already validated")
        elif challenge.type == "dns-persist-01":
            out.print(
                f"\n{challenge.domain}: publish this DNS TXT record once (it stays: renewals"
                " validate with it, no DNS change)"
            )
            for line in _challenge_lines(challenge, "  "):
                out.print(line, markup=False)
        elif challenge.type == "dns-01":
            out.print(f"\n{challenge.domain}: publish this DNS TXT record")
            for line in _challenge_lines(challenge, "  "):
                out.print(line, markup=False)
        else:
            where = "certctl serves it itself during 'verify'"
            if report.validation.method == "webroot":
                where = f"certctl writes it into {report.validation.webroot} during 'verify'"
            elif report.validation.method == "manual":
                where = "publish it on your web server"
            out.print(f"\n{challenge.domain}: {where}")
            for line in _challenge_lines(challenge, "  "):
                out.print(line, markup=False)
    out.print(f"\nThen run: {hints.verify(report.name)}", markup=False)


def verify_report(report: VerifyReport) -> None:
    """The CA's verdict."""
    out = _Out()
    for domain, error in report.results.items():
        out.print(f"{domain}: {'valid' if error is None else error}")
    out.print(f"Validated. Now run: {hints.issue(report.name)}", markup=False)


def issue_report(report: IssueReport) -> None:
    """The stored certificate's summary."""
    out = _Out()
    current = report.current
    if report.action == "kept":
        out.print(
            f"Kept the current certificate [bold]{report.name}[/] (version {report.version}):"
            f" {report.reason}; use --force to issue a new one anyway"
        )
        return
    out.print(f"Certificate [bold]{report.name}[/] stored as version {report.version}")
    out.print(f"  domains:   {_domains(report.domains)}", markup=False)
    out.print(f"  serial:    {current.serial}")
    out.print(f"  issuer:    {current.issuer}")
    out.print(f"  not after: {_when(current.not_after)}")
    _live_paths(out, report.name, report.paths)


_STATE_STYLE = {
    "valid": "green",
    "due": "yellow",
    "expiring": "yellow",
    "pending order": "cyan",
    "order expired": "yellow",
    "expired": "red",
    "failed": "red",
    "revoked": "red",
    "damaged": "red",
}


def list_table(entries: list[ListEntry]) -> None:
    """The store as an aligned table (ANSI colour for the state on a terminal)."""
    out = _Out()
    if not entries:
        out.print(
            f"No certificates in the store. See how to start with: {hints.ORDER_HELP}"
            f" (or {hints.UPLOAD_HELP})",
            markup=False,
        )
        return
    fleet = any(entry.deployments for entry in entries)  # a DEPLOYED column once hosts deploy
    header: tuple[str, ...] = ("NAME", "DOMAINS", "ISSUER", "NOT AFTER", "DAYS", "RENEWAL")
    header += ("STATE", "DEPLOYED") if fleet else ("STATE",)
    rows = [
        (
            entry.name,
            _domains(entry.domains),
            entry.issuer or "-",
            entry.not_after.strftime("%Y-%m-%d") if entry.not_after else "-",
            "-" if entry.days_left is None else f"{entry.days_left:.0f}",
            entry.method,
            entry.state,
            *((entry.deployed,) if fleet else ()),
        )
        for entry in entries
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    colours = {"green": 32, "yellow": 33, "red": 31, "cyan": 36}
    lines = []
    for n, row in enumerate((header, *rows)):
        cells = [
            cell.rjust(widths[i]) if i == 4 else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ]
        if out.fancy:
            if n == 0:
                cells = [f"\x1b[1m{c}\x1b[0m" for c in cells]
            else:
                code = colours.get(_STATE_STYLE.get(row[6], ""))
                if code:
                    cells[6] = f"\x1b[{code}m{cells[6]}\x1b[0m"
        lines.append("  ".join(cells).rstrip())
    write_out("\n".join(lines) + "\n")


def renew_report(report: RenewReport) -> None:
    """One line per certificate that needed something; nothing at all otherwise (cron)."""
    if all(o.action == "taken" for o in report.outcomes):
        return
    out = _Out()
    labels = {
        "renewed": "renewed",
        "failed": "FAILED",
        "notified": "notified",
        "would-renew": "would renew",
        "would-notify": "would notify",
        "locked": "skipped (locked)",
        "lagging": "WARNING: a host lags behind",
        "damaged": "DAMAGED",
    }
    for outcome in report.outcomes:
        if outcome.action == "taken":
            continue  # another host of the fleet is on it: nothing for this host's cron mail
        line = f"{outcome.name}: {labels.get(outcome.action, outcome.action)}"
        if outcome.detail:
            line += f" — {outcome.detail}"
        out.print(line, markup=False)
        for error in outcome.errors:
            out.print(f"{outcome.name}: error: {error}", markup=False)


def upload_report(report: UploadReport) -> None:
    """The stored upload's summary."""
    out = _Out()
    verb = "replaced with" if report.replaced else "stored as"
    out.print(f"Certificate [bold]{report.name}[/] {verb} version {report.version}")
    rows = [
        ("names", _domains(report.names)),
        ("issuer", report.issuer),
        ("serial", report.serial),
        ("sha256", report.fingerprint),
        (
            "not after",
            f"{_when(datetime.fromisoformat(report.not_after))} ({report.days_left:.0f} days left)",
        ),
        ("chain", f"{report.chain_length} intermediate(s)"),
        ("key", report.key_type),
        ("warnings", str(len(report.warnings)) if report.warnings else "none"),
    ]
    for label, value in rows:
        out.print(f"  {label + ':':<10} {value}", markup=False)
    _live_paths(out, report.name, report.paths)


def _live_paths(out: _Out, name: str, paths: dict[str, str]) -> None:
    """The live paths, or (a database store has no files on this host) how to get files."""
    for label, path in paths.items():
        out.print(f"  {label + ':':<10} {path}", markup=False)
    if not paths:
        out.print(f"  {NO_LIVE_FILES}: {hints.export(name)}", markup=False)


# a stored certificate without live paths is in a database store: `export` writes files
NO_LIVE_FILES = "live files: none on this host (shared store)"


def say(text: str) -> None:
    """One plain line on stdout."""
    _Out().print(text, markup=False)


# ---- show / remove / export ---------------------------------------------------


def write_pem(data: bytes) -> None:
    """PEM exactly as stored, on stdout."""
    write_out_bytes(data)


def _days(value: float | None) -> str:
    return "" if value is None else f" ({value:.0f} days left)" if value >= 0 else " (expired)"


def show_report(report: ShowReport) -> None:
    """One certificate, section by section (plain text when not a terminal)."""
    out = _Out()
    record, cert, policy = report.record, report.certificate, report.policy

    def row(label: str, value: object) -> None:
        out.print(f"  {label + ':' if label else '':<13} {value}", markup=False)

    out.print(f"[bold]{record.name}[/]")  # names are validated: no markup inside
    row("state", f"{report.state} ({report.reason})")
    row("domains", _domains(record.domains))
    source = record.source + (f", {record.server}" if record.server else "")
    row("source", source)
    row("profile", record.profile or "-")
    row("revoked", "yes" if record.revoked else "no")
    if cert is not None:
        row("names", _domains(cert.names))
        row("key type", cert.key_type)
        row("issuer", cert.issuer)
        row("serial", cert.serial)
        row("sha256", cert.fingerprint_sha256)
        row("not before", _when(cert.not_before))
        row("not after", _when(cert.not_after) + _days(report.days_left))
        for n, entry in enumerate(report.chain):
            row("chain" if n == 0 else "", f"{entry.subject} (issued by {entry.issuer})")
        if not report.chain:
            row("chain", "none (no intermediates stored)")
    else:
        row("key type", f"{record.key_type} (no certificate yet)")
    row("validation", report.validation or "none (uploaded)")
    for key, value in report.validation_settings.items():
        row("", f"{key} = {value}")
    if policy.due_at is not None:
        row("renewal", f"automatic, due {_when(policy.due_at)} ({policy.rule})")
    else:
        row("renewal", policy.rule)
    if policy.renew_before_days is not None:
        row("", f"renew_before = {policy.renew_before_days:g} days")
    if policy.ari is not None:
        row("ARI window", f"{_when(policy.ari.start)} - {_when(policy.ari.end)}")
    if policy.failures:
        last = f"last {_when(policy.last_attempt)}: {policy.last_error}"
        row("failures", f"{policy.failures}, {last}")
        row("", f"next attempt not before {_when(policy.next_attempt)}")
    if policy.last_renewed is not None:
        row("renewed", _when(policy.last_renewed))
    if policy.notice_from is not None:
        row("notice from", _when(policy.notice_from))
    last_sent = record.notices.get("last_sent")
    row("last notice", _when(last_sent) if isinstance(last_sent, datetime) else "never")
    row("deploy hook", record.deploy_hook or "-")
    if record.endpoints:
        row("endpoints", ", ".join(e.label for e in record.endpoints))
    if report.versions:
        out.print("  versions:", markup=False)
        for version in report.versions:
            if version.error:
                detail = version.error
            else:
                detail = f"serial {version.serial}  not after {_when(version.not_after)}"
            live = "  (live)" if version.live else ""
            out.print(f"    {version.version:>3}  {detail}{live}", markup=False)
    if report.paths:
        out.print("  live paths:", markup=False)
        for label, path in report.paths.items():
            out.print(f"    {label + ':':<10} {path}", markup=False)
    elif report.live_version is not None:
        out.print(f"  {NO_LIVE_FILES}: {hints.export(record.name)}", markup=False)
    order = record.order
    if order is not None:
        expires = _when(order.expires)
        if report.state == "order expired":
            out.print(f"  order expired: {order.status}, expired {expires}", markup=False)
        else:
            out.print(f"  pending order: {order.status}, expires {expires}", markup=False)
        if order.error:
            out.print(f"    error: {order.error}", markup=False)
        for challenge in order.challenges:
            out.print(f"    {challenge.domain}: {challenge.type} {challenge.status}", markup=False)
            if challenge.status != "valid":
                for line in _challenge_lines(challenge, "      "):
                    out.print(line, markup=False)
        if report.next_step:
            out.print(f"  next step: {report.next_step}", markup=False)


def remove_report(report: RemoveReport) -> None:
    """What was removed."""
    out = _Out()
    out.print(f"Removed {report.name} and its {report.versions} version(s)", markup=False)
    if report.dropped_order is not None:
        out.print(
            "Dropped its pending order locally (ACME cannot cancel an order; it expires at the"
            f" CA on {_when(report.dropped_order.expires)})",
            markup=False,
        )


def export_report(report: ExportReport) -> None:
    """The files written."""
    out = _Out()
    out.print(f"Exported {report.name} (version {report.version}) to {report.directory}", False)
    for label, path in report.files.items():
        mode = f"{report.key_mode:04o}" if label == "privkey" else "0644"
        out.print(f"  {label + ':':<10} {path} ({mode})", markup=False)


# ---- accounts and revocation --------------------------------------------------

if TYPE_CHECKING:
    from certctl.ops.accounts import AccountReport, RolloverReport
    from certctl.ops.revoke import RevokeReport


def account_report(report: AccountReport, command: str) -> None:
    """One account: where, which URI, its status and key."""
    out = _Out()
    headline = {
        "register": "Existing ACME account" if report.existing else "Registered ACME account",
        "deactivate": "Deactivated ACME account",
        "update": "Updated the contact of ACME account",
    }.get(command, "ACME account")
    if command == "deactivate" and report.existing:
        headline = "Already deactivated: ACME account"
    out.print(f"{headline} at {report.server}", markup=False)
    rows = [
        ("uri", report.uri),
        ("status", report.status + ("" if report.source == "ca" else " (as stored)")),
        ("contact", ", ".join(report.contact) or "-"),
        ("key", f"{report.key_type}, thumbprint {report.key_thumbprint}"),
        ("created", _when(report.created)),
    ]
    if report.eab_kid:
        rows.append(("eab kid", report.eab_kid))
    for label, value in rows:
        out.print(f"  {label + ':':<9} {value}", markup=False)
    if command == "deactivate":
        out.print(f"Register a new account with: {hints.REGISTER_ACCOUNT}", False)


def rollover_report(report: RolloverReport) -> None:
    """The account's old and new key."""
    out = _Out()
    out.print(f"Rolled over the key of {report.uri}", markup=False)
    out.print(f"  old key: {report.old_key_type}, thumbprint {report.old_key_thumbprint}", False)
    out.print(f"  new key: {report.key_type}, thumbprint {report.key_thumbprint}", False)
    if report.pending_orders:
        out.print("Pending orders whose values to publish changed with the key:", markup=False)
    for changed in report.pending_orders:
        challenge = changed.challenge
        out.print(f"  {changed.name} ({challenge.domain}): {challenge.location}", markup=False)
        out.print(f"    new value: {challenge.validation}", markup=False)
        if changed.method == "manual":
            out.print(f"    publish it, then run: {hints.verify(changed.name)}", markup=False)
        else:
            out.print("    certctl publishes it itself during 'verify'", markup=False)


def revoke_report(report: RevokeReport) -> None:
    """The revoked certificate and what happens next."""
    out = _Out()
    verb = "was already revoked" if report.already_revoked else "revoked"
    out.print(
        f"{report.name}: certificate {report.serial} {verb} at {report.server}"
        f" (reason {report.reason}, signed with the {report.signed_with})",
        markup=False,
    )
    out.print(f"Next: {report.next_step}", markup=False)


def probe_table(report: ProbeReport) -> None:
    """One row per endpoint: certificate, endpoint, verdict and why."""
    if not report.results:
        write_err(
            "no endpoints recorded: add them with"
            f" {hints.command('set', 'NAME', '--endpoint', 'HOST[:PORT]')}\n"
        )
        return
    header = ("NAME", "ENDPOINT", "STATUS", "DETAIL")
    rows = [
        (r.name, r.endpoint.label, r.status.upper() if not r.ok else r.status, r.detail)
        for r in report.results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(3)]
    lines = [
        "  ".join([*(c.ljust(widths[i]) for i, c in enumerate(row[:3])), row[3]]).rstrip()
        for row in (header, *rows)
    ]
    write_out("\n".join(lines) + "\n")


def write_text(text: str) -> None:
    """Text exactly as given on stdout (plugin lines, metrics): no colour, no wrapping."""
    write_out(text)
