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

if TYPE_CHECKING:
    from rich.console import Console

    from certctl.renew import RenewReport
    from certctl.services import IssueReport, ListEntry, OrderReport, VerifyReport
    from certctl.upload import UploadReport

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
            width=None if stream.isatty() else 200,
        )
    return _consoles[key]


_MARKUP = re.compile(r"\[/?(?:bold|green|yellow|red|cyan)?\]")


def _fancy() -> bool:
    """Rich (colour, wrapping) only for a terminal; plain fast text for pipes and cron."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


class _Out:
    """Prints lines: through rich on a terminal, as plain text otherwise."""

    def __init__(self) -> None:
        self.fancy = _fancy()

    def print(self, text: str, markup: bool = True) -> None:
        if self.fancy:
            console().print(text, markup=markup)
        else:
            sys.stdout.write((_MARKUP.sub("", text) if markup else text) + "\n")


def print_json(document: Any) -> None:
    """The one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


class CliReporter:
    """Warnings and progress on stderr; a spinner only on a terminal."""

    def __init__(self, quiet_status: bool = False) -> None:
        self.quiet_status = quiet_status

    def warn(self, message: str) -> None:
        """One warning line on stderr."""
        sys.stderr.write(f"warning: {message.removeprefix('warning: ')}\n")

    def info(self, message: str) -> None:
        """One progress line on stderr."""
        sys.stderr.write(message + "\n")

    @contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner on a terminal; one line elsewhere."""
        if sys.stderr.isatty() and not self.quiet_status:
            with console(stderr=True).status(message):
                yield
        else:
            yield


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def order_report(report: OrderReport) -> None:
    """What to publish, per challenge."""
    out = _Out()
    out.print(f"Order placed for [bold]{report.name}[/] ({', '.join(report.domains)})")
    out.print(f"Validation: {report.validation.label}; order expires {_when(report.order.expires)}")
    for challenge in report.order.challenges:
        if challenge.status == "valid":
            out.print(f"\n{challenge.domain}: already validated")
        elif challenge.type == "dns-01":
            out.print(f"\n{challenge.domain}: publish this DNS TXT record")
            out.print(f"  name:  {challenge.record_name}.")
            out.print(f"  value: {challenge.validation}")
        else:
            where = "certctl serves it itself during 'verify'"
            if report.validation.method == "webroot":
                where = f"certctl writes it into {report.validation.webroot} during 'verify'"
            elif report.validation.method == "manual":
                where = "publish it on your web server"
            out.print(f"\n{challenge.domain}: {where}")
            out.print(f"  URL:     http://{challenge.domain}{challenge.record_name}")
            out.print(f"  content: {challenge.validation}")
    out.print(f"\nThen run: certctl verify {report.name}")


def verify_report(report: VerifyReport) -> None:
    """The CA's verdict."""
    out = _Out()
    for domain, error in report.results.items():
        out.print(f"{domain}: {'valid' if error is None else error}")
    out.print(f"Validated. Now run: certctl issue {report.name}")


def issue_report(report: IssueReport) -> None:
    """The stored certificate's summary."""
    out = _Out()
    current = report.current
    out.print(f"Certificate [bold]{report.name}[/] stored as version {report.version}")
    out.print(f"  domains:   {', '.join(report.domains)}")
    out.print(f"  serial:    {current.serial}")
    out.print(f"  issuer:    {current.issuer}")
    out.print(f"  not after: {_when(current.not_after)}")
    for label, path in report.paths.items():
        out.print(f"  {label + ':':<10} {path}")


_STATE_STYLE = {
    "valid": "green",
    "due": "yellow",
    "expiring": "yellow",
    "pending order": "cyan",
    "expired": "red",
    "failed": "red",
    "revoked": "red",
    "damaged": "red",
}


def list_table(entries: list[ListEntry]) -> None:
    """The store as an aligned table (ANSI colour for the state on a terminal)."""
    out = _Out()
    if not entries:
        out.print("No certificates in the store. Start with: certctl order -d DOMAIN")
        return
    header = ("NAME", "DOMAINS", "ISSUER", "NOT AFTER", "DAYS", "RENEWAL", "STATE")
    rows = [
        (
            entry.name,
            ", ".join(entry.domains),
            entry.issuer or "-",
            entry.not_after.strftime("%Y-%m-%d") if entry.not_after else "-",
            "-" if entry.days_left is None else f"{entry.days_left:.0f}",
            entry.method,
            entry.state,
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
    sys.stdout.write("\n".join(lines) + "\n")


def renew_report(report: RenewReport) -> None:
    """One line per certificate that needed something; nothing at all otherwise (cron)."""
    if not report.outcomes:
        return
    out = _Out()
    labels = {
        "renewed": "renewed",
        "failed": "FAILED",
        "notified": "notified",
        "would-renew": "would renew",
        "would-notify": "would notify",
        "locked": "skipped (locked)",
        "damaged": "DAMAGED",
    }
    for outcome in report.outcomes:
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
        ("names", ", ".join(report.names)),
        ("issuer", report.issuer),
        ("serial", report.serial),
        ("sha256", report.fingerprint),
        ("not after", f"{report.not_after} ({report.days_left:.0f} days left)"),
        ("chain", f"{report.chain_length} intermediate(s)"),
        ("key", report.key_type),
        ("warnings", str(len(report.warnings)) if report.warnings else "none"),
    ]
    for label, value in rows:
        out.print(f"  {label + ':':<10} {value}", markup=False)
    for label, path in report.paths.items():
        out.print(f"  {label + ':':<10} {path}", markup=False)


def say(text: str) -> None:
    """One plain line on stdout."""
    _Out().print(text, markup=False)
