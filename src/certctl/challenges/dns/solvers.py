"""DNS-01 solvers: RFC 2136 dynamic update with TSIG, and a user's hook command.

Both publish `_acme-challenge` TXT records (at a CNAME's target when the name is
delegated), wait until every authoritative server serves them, and remove
exactly the values they added.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.name

from certctl.challenges.dns import protocol
from certctl.challenges.dns.protocol import Expectation, Server, TsigKey, show
from certctl.errors import BadInput, CertctlError, OperationFailed
from certctl.models import Challenge
from certctl.reporting import Reporter

DEFAULT_PROPAGATION_TIMEOUT = 120.0
HOOK_TIMEOUT = 300.0
HOOK_STDERR_LINES = 3

# Validation.settings keys and the options that set them (for messages).
OPTIONS = {
    "server": "--dns-server",
    "tsig_key": "--tsig-key",
    "tsig_algorithm": "--tsig-algorithm",
    "tsig_secret_file": "--tsig-secret-file",
    "tsig_secret_env": "--tsig-secret-env",
    "zone": "--dns-zone",
    "hook": "--dns-hook",
    "nameservers": "--dns-nameserver",
    "propagation_timeout": "--propagation-timeout",
}
_RFC2136_ONLY = ("server", "tsig_key", "tsig_algorithm", "tsig_secret_file", "tsig_secret_env")


def settings_for(method: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check a DNS provider's settings and return them as stored (secrets only referenced)."""
    given = {k: v for k, v in raw.items() if v not in (None, "", [], ())}
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise BadInput(f"unknown DNS setting {unknown[0]!r}")
    if method not in ("rfc2136", "hook"):
        if given:
            option = OPTIONS[next(iter(given))]
            raise BadInput(f"{option} needs --challenge dns --dns-provider rfc2136 or hook")
        return {}
    wrong = [k for k in (("hook",) if method == "rfc2136" else _RFC2136_ONLY) if k in given]
    if method == "hook":
        wrong += ["zone"] if "zone" in given else []
    if wrong:
        raise BadInput(f"{OPTIONS[wrong[0]]} does not apply to --dns-provider {method}")
    settings: dict[str, Any] = {}
    if "nameservers" in given:
        servers = [protocol.parse_server(str(s), "--dns-nameserver") for s in given["nameservers"]]
        settings["nameservers"] = [str(s) for s in servers]
    timeout = float(given.get("propagation_timeout", DEFAULT_PROPAGATION_TIMEOUT))
    if not 0 < timeout <= 3600:
        raise BadInput(f"invalid --propagation-timeout {timeout:g}: expected 1-3600 seconds")
    settings["propagation_timeout"] = timeout
    if method == "hook":
        return {"hook": _check_hook(given.get("hook")), **settings}
    return {**_check_rfc2136(given), **settings}


def _check_hook(command: Any) -> str:
    if not command:
        raise BadInput("--dns-provider hook needs --dns-hook CMD")
    try:
        argv = shlex.split(str(command))
    except ValueError as e:
        raise BadInput(f"cannot parse --dns-hook {command!r}: {e}") from None
    if not argv or shutil.which(argv[0]) is None:
        raise BadInput(
            f"--dns-hook program {argv[0] if argv else ''!r} not found or not executable"
        )
    if "/" in argv[0] and not os.path.isabs(argv[0]):
        # stored for renewals, which run from another directory (cron)
        return shlex.join([os.path.abspath(argv[0]), *argv[1:]])
    return str(command)


def _check_rfc2136(given: Mapping[str, Any]) -> dict[str, Any]:
    for required in ("server", "tsig_key"):
        if required not in given:
            raise BadInput(f"--dns-provider rfc2136 needs {OPTIONS[required]}")
    algorithm = str(given.get("tsig_algorithm", protocol.DEFAULT_ALGORITHM)).lower()
    if algorithm not in protocol.ALGORITHMS:
        raise BadInput(
            f"unknown --tsig-algorithm {algorithm!r}: use one of {', '.join(protocol.ALGORITHMS)}"
        )
    settings: dict[str, Any] = {
        "server": str(protocol.parse_server(str(given["server"]), "--dns-server")),
        "tsig_key": _name(given["tsig_key"], "--tsig-key"),
        "tsig_algorithm": algorithm,
    }
    if "zone" in given:
        settings["zone"] = _name(given["zone"], "--dns-zone")
    if ("tsig_secret_file" in given) == ("tsig_secret_env" in given):
        raise BadInput(
            "--dns-provider rfc2136 needs one of --tsig-secret-file or --tsig-secret-env"
        )
    if "tsig_secret_file" in given:
        settings["tsig_secret_file"] = str(Path(given["tsig_secret_file"]).resolve())
    else:
        settings["tsig_secret_env"] = str(given["tsig_secret_env"])
    # read once now so a missing or garbled secret fails the order, not a 3 a.m. renewal
    protocol.read_secret(settings.get("tsig_secret_file"), settings.get("tsig_secret_env"))
    return settings


def _name(value: Any, option: str) -> str:
    try:
        return show(dns.name.from_text(str(value)))
    except Exception:
        raise BadInput(f"invalid {option} {value!r}: expected a DNS name") from None


@dataclass(frozen=True)
class _Record:
    """One TXT value certctl publishes: where, in which zone, for which domain."""

    domain: str
    name: dns.name.Name
    value: str
    zone: dns.name.Name | None = None


def _dns_challenges(challenges: list[Challenge]) -> list[Challenge]:
    return [c for c in challenges if c.type == "dns-01"]


class _Publisher:
    """Shared flow: publish, wait for every authoritative server, remove exactly what was added."""

    waits_for_propagation = True  # present() polls every authoritative server

    def __init__(self, settings: Mapping[str, Any], method: str, reporter: Reporter) -> None:
        self.settings = settings_for(method, settings)
        self.reporter = reporter
        self.nameservers = [
            protocol.parse_server(s, "--dns-nameserver")
            for s in self.settings.get("nameservers", [])
        ]
        self.timeout = float(self.settings["propagation_timeout"])
        self._added: list[_Record] = []

    def present(self, challenges: list[Challenge]) -> None:
        """Publish every dns-01 value, then wait until all authoritative servers serve them."""
        todo = _dns_challenges(challenges)
        if not todo:
            return
        try:
            self._publish(todo)
            expectations = self._expectations()
            count = len({e.server for e in expectations})
            with self.reporter.status(
                f"waiting until {count} name server(s) serve the TXT records"
                f" (up to {self.timeout:g}s)"
            ):
                protocol.wait_until_served(expectations, self.timeout)
        except CertctlError as e:
            problems = self._remove()
            if problems:
                raise type(e)(f"{e}; also {'; '.join(problems)}") from e
            raise

    def cleanup(self, challenges: list[Challenge]) -> None:
        """Remove what present() added; a failure is a warning, the certificate is fine."""
        for problem in self._remove():
            self.reporter.warn(problem)

    def _publish(self, challenges: list[Challenge]) -> None:
        raise NotImplementedError

    def _unpublish(self, records: list[_Record]) -> None:
        raise NotImplementedError

    def _servers_of(self, record: _Record) -> tuple[str, list[Server]]:
        raise NotImplementedError

    def _expectations(self) -> list[Expectation]:
        """Each (server, name) with the values it must serve."""
        wanted: dict[tuple[Server, dns.name.Name], Expectation] = {}
        for record in self._added:
            zone, servers = self._servers_of(record)
            for server in servers:
                key = (server, record.name)
                if key not in wanted:
                    wanted[key] = Expectation(server, zone, record.name, set())
                wanted[key].values.add(record.value)
        return list(wanted.values())

    def _remove(self) -> list[str]:
        """Delete every value added so far; return what could not be removed."""
        records, self._added = self._added, []
        if not records:
            return []
        try:
            self._unpublish(records)
        except CertctlError as e:
            names = ", ".join(sorted({show(r.name) for r in records}))
            return [f"could not remove TXT {names} ({e}): remove it by hand"]
        return []


class Rfc2136Solver(_Publisher):
    """Publish through TSIG-signed dynamic updates (RFC 2136, RFC 8945) to one primary server."""

    def __init__(self, settings: Mapping[str, Any], reporter: Reporter) -> None:
        super().__init__(settings, "rfc2136", reporter)
        self.server = protocol.parse_server(self.settings["server"], "--dns-server")
        self.zone = self.settings.get("zone")
        self._zones: dict[dns.name.Name, list[Server]] = {}

    def check(self) -> None:
        """Before an order is placed: the secret must still be readable."""
        self._key()

    def _key(self) -> TsigKey:
        secret = protocol.read_secret(
            self.settings.get("tsig_secret_file"), self.settings.get("tsig_secret_env")
        )
        return TsigKey(self.settings["tsig_key"], self.settings["tsig_algorithm"], secret)

    def _publish(self, challenges: list[Challenge]) -> None:
        key = self._key()
        located: dict[str, tuple[dns.name.Name, dns.name.Name]] = {}
        records = []
        for challenge in challenges:
            if challenge.record_name not in located:
                name = protocol.follow_cname(challenge.record_name, self.server)
                zone = dns.name.from_text(self.zone) if self.zone else None
                located[challenge.record_name] = (
                    name,
                    zone or protocol.find_zone(self.server, name),
                )
            name, zone = located[challenge.record_name]
            records.append(_Record(challenge.domain, name, challenge.validation, zone))
        for zone in dict.fromkeys(r.zone for r in records):
            assert zone is not None
            batch = [r for r in records if r.zone == zone]
            try:
                protocol.update_txt(self.server, zone, key, [(r.name, r.value) for r in batch])
            except protocol.Unreachable:
                self._added += batch  # no answer: it may have been applied; remove it too
                raise
            self._added += batch
            names = ", ".join(sorted({show(r.name) for r in batch}))
            self.reporter.info(f"added TXT {names} in zone {show(zone)} at {self.server}")

    def _unpublish(self, records: list[_Record]) -> None:
        key = self._key()
        for zone in dict.fromkeys(r.zone for r in records):
            assert zone is not None
            batch = [(r.name, r.value) for r in records if r.zone == zone]
            protocol.update_txt(self.server, zone, key, batch, delete=True)

    def _servers_of(self, record: _Record) -> tuple[str, list[Server]]:
        assert record.zone is not None
        if self.nameservers:
            return show(record.zone), self.nameservers
        if record.zone not in self._zones:
            self._zones[record.zone] = protocol.zone_nameservers(self.server, record.zone)
        return show(record.zone), self._zones[record.zone]


class HookSolver(_Publisher):
    """Publish by running the user's command with CERTCTL_ACTION=add|remove (no shell)."""

    def __init__(self, settings: Mapping[str, Any], reporter: Reporter) -> None:
        super().__init__(settings, "hook", reporter)
        self.argv = shlex.split(self.settings["hook"])

    def _publish(self, challenges: list[Challenge]) -> None:
        asked = self.nameservers[0] if self.nameservers else None
        for challenge in challenges:
            name = protocol.follow_cname(challenge.record_name, asked)
            record = _Record(challenge.domain, name, challenge.validation)
            self._run("add", record)
            self._added.append(record)
            self.reporter.info(f"{self.argv[0]} added TXT {show(name)}")

    def _unpublish(self, records: list[_Record]) -> None:
        failures = []
        for record in records:
            try:
                self._run("remove", record)
            except OperationFailed as e:
                failures.append(str(e))
        if failures:
            raise OperationFailed("; ".join(failures))

    def _servers_of(self, record: _Record) -> tuple[str, list[Server]]:
        if self.nameservers:
            return "", self.nameservers  # the zone is the hook's business
        zone, servers = protocol.resolver_nameservers(record.name)
        return show(zone), servers

    def _run(self, action: str, record: _Record) -> None:
        """Run the hook once; non-zero exit → OperationFailed with its stderr's last lines."""
        env = {
            **os.environ,
            "CERTCTL_ACTION": action,
            "CERTCTL_RECORD_NAME": show(record.name),
            "CERTCTL_RECORD_VALUE": record.value,
            "CERTCTL_DOMAIN": record.domain.removeprefix("*."),
        }
        what = f"DNS hook {self.argv[0]} ({action} TXT {show(record.name)} for {record.domain})"
        try:
            proc = subprocess.run(
                self.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=HOOK_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise OperationFailed(f"{what} did not finish within {HOOK_TIMEOUT:g}s") from None
        except OSError as e:
            raise OperationFailed(f"{what} could not run: {e.strerror}") from None
        if proc.returncode != 0:
            lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            tail = " | ".join(line.strip() for line in lines[-HOOK_STDERR_LINES:] if line.strip())
            raise OperationFailed(
                f"{what} failed with exit {proc.returncode}: {tail or '(no stderr)'}"
            )
