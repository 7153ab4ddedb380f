"""show, remove, export: one certificate read whole, deleted whole, or copied out.

Services print nothing; they return plain report objects that the CLI renders.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certctl.context import Context
from certctl.errors import (
    BadInput,
    CertctlError,
    Declined,
    NotFound,
    OperationFailed,
    StoreError,
)
from certctl.models import SOURCE_UPLOAD, CertRecord, OrderState
from certctl.policy import hints, timing
from certctl.policy.names import check_cert_name, unicode_domain
from certctl.store.contract import live_files

if TYPE_CHECKING:
    from certctl.pki.certinfo import CertInfo

REDACTED = "<redacted>"
# A setting whose key names one of these holds a secret, unless it only points at one.
_SECRET_WORDS = ("secret", "password", "passwd", "passphrase", "key", "token", "hmac")
_REFERENCE_SUFFIXES = ("_file", "_env", "_path")
# Settings whose key mentions a key but that hold a name, never a secret (RFC 8945: the
# TSIG key's name and algorithm are sent in clear in every signed message).
_NOT_SECRETS = frozenset({"tsig_key", "tsig_algorithm", "key_type"})
EXPORT_FILES = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")
CERT_MODE = 0o644
KEY_MODE = 0o600

Confirm = Callable[[str], bool]


def redact(settings: Any, key: str = "") -> Any:
    """Settings as they may be shown: references (…_file, …_env) kept, secrets replaced."""
    if isinstance(settings, dict):
        return {k: redact(v, str(k)) for k, v in settings.items()}
    if isinstance(settings, list):
        return [redact(v, key) for v in settings]
    lowered = key.lower()
    if lowered in _NOT_SECRETS:
        return settings
    if any(word in lowered for word in _SECRET_WORDS) and not lowered.endswith(_REFERENCE_SUFFIXES):
        return REDACTED
    return settings


def _clean(text: str) -> str:
    """One printable line, whatever a certificate's name holds."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


# ---- show -------------------------------------------------------------------


@dataclass
class ChainEntry:
    """One certificate of the live chain (issuer of the leaf first)."""

    subject: str
    issuer: str
    not_after: datetime
    fingerprint: str


@dataclass
class VersionEntry:
    """One stored version, parsed from its own PEM."""

    version: int
    live: bool
    serial: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    fingerprint: str | None = None
    error: str | None = None


@dataclass
class Policy:
    """How and when the certificate is renewed or noticed."""

    automatic: bool
    rule: str
    due_at: datetime | None
    notice_from: datetime | None
    renew_before_days: float | None
    ari: timing.AriWindow | None
    ari_next_check: datetime | None
    failures: int
    last_attempt: datetime | None
    last_error: str | None
    next_attempt: datetime | None
    last_renewed: datetime | None


@dataclass
class ShowReport:
    """Everything certctl knows about one certificate."""

    record: CertRecord
    state: str
    reason: str
    days_left: float | None
    certificate: CertInfo | None
    chain: list[ChainEntry]
    versions: list[VersionEntry]
    live_version: int | None
    paths: dict[str, str] | None
    policy: Policy
    validation_settings: dict[str, Any]
    fullchain: bytes | None = field(default=None, repr=False)
    next_step: str | None = None  # for a pending or expired order: a command to paste

    @property
    def validation(self) -> str | None:
        """The validation label, or None for an uploaded certificate."""
        return None if self.record.source == SOURCE_UPLOAD else self.record.validation.label

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `show --json`."""
        from certctl.ops.obtain import challenge_json

        record, cert, policy = self.record, self.certificate, self.policy
        return {
            "name": record.name,
            "domains": record.domains,
            "unicode_domains": [unicode_domain(d) for d in record.domains],
            "source": record.source,
            "server": record.server,
            "profile": record.profile,
            "key_type": record.key_type,
            "created": _iso(record.created),
            "state": self.state,
            "reason": self.reason,
            "revoked": record.revoked,
            "certificate": None
            if cert is None
            else {
                "names": cert.names,
                "unicode_names": [unicode_domain(d) for d in cert.names],
                "subject": cert.subject_cn,
                "issuer": cert.issuer,
                "serial": cert.serial,
                "fingerprint_sha256": cert.fingerprint_sha256,
                "key_type": cert.key_type,
                "not_before": _iso(cert.not_before),
                "not_after": _iso(cert.not_after),
                "days_left": None if self.days_left is None else round(self.days_left, 2),
            },
            "chain": [
                {
                    "subject": c.subject,
                    "issuer": c.issuer,
                    "not_after": _iso(c.not_after),
                    "fingerprint_sha256": c.fingerprint,
                }
                for c in self.chain
            ],
            "validation": self.validation,
            "validation_settings": self.validation_settings,
            "renewal": {
                "automatic": policy.automatic,
                "rule": policy.rule,
                "due_at": _iso(policy.due_at),
                "notice_from": _iso(policy.notice_from),
                "renew_before_days": policy.renew_before_days,
                "ari": None
                if policy.ari is None
                else {
                    "start": _iso(policy.ari.start),
                    "end": _iso(policy.ari.end),
                    "pick": _iso(policy.ari.pick),
                    "next_check": _iso(policy.ari_next_check),
                },
                "failures": policy.failures,
                "last_attempt": _iso(policy.last_attempt),
                "last_error": policy.last_error,
                "next_attempt": _iso(policy.next_attempt),
                "last_renewed": _iso(policy.last_renewed),
            },
            "notices": {
                "last_sent": _iso(record.notices.get("last_sent")),
                "last_reason": record.notices.get("last_reason"),
                "channels": list(record.notices.get("channels", [])),
            },
            "deploy_hook": record.deploy_hook,
            "endpoints": [e.label for e in record.endpoints],
            "live_version": self.live_version,
            "versions": [
                {
                    "version": v.version,
                    "live": v.live,
                    "serial": v.serial,
                    "not_before": _iso(v.not_before),
                    "not_after": _iso(v.not_after),
                    "fingerprint_sha256": v.fingerprint,
                    "error": v.error,
                }
                for v in self.versions
            ],
            "paths": self.paths,
            "order": None if record.order is None else _order_json(record.order, challenge_json),
            "next_step": self.next_step,
        }


def _order_json(order: OrderState, challenge_json: Callable[[Any], Any]) -> dict[str, Any]:
    return {
        "status": order.status,
        "url": order.url,
        "created": _iso(order.created),
        "expires": _iso(order.expires),
        "profile": order.profile,
        "error": order.error,
        "challenges": [challenge_json(c) for c in order.challenges],
    }


def show(ctx: Context, name: str) -> ShowReport:
    """Gather everything about one certificate (read only; no lock, no network)."""
    from certctl.pki.material import cert_info_pem

    record = ctx.store.read(name)
    now = ctx.now()
    status = timing.status_of(record, now, ctx.settings.notice_days)
    live_version = ctx.store.live_version(name)
    live = ctx.store.read_live(name)
    certificate = cert_info_pem(live["cert.pem"]) if live is not None else None
    chain = _chain_of(live["chain.pem"]) if live is not None else []
    versions = []
    for number in ctx.store.versions(name):
        entry = VersionEntry(number, live=number == live_version)
        try:
            info = cert_info_pem(ctx.store.read_version(name, number)["cert.pem"])
        except CertctlError as e:
            entry.error = str(e)
        else:
            entry.serial, entry.fingerprint = info.serial, info.fingerprint_sha256
            entry.not_before, entry.not_after = info.not_before, info.not_after
        versions.append(entry)
    validation_settings: dict[str, Any] = {}
    if record.source != SOURCE_UPLOAD:
        if record.validation.webroot:
            validation_settings["webroot"] = record.validation.webroot
        if record.validation.http_port:
            validation_settings["http_port"] = record.validation.http_port
        validation_settings.update(redact(record.validation.settings))
    return ShowReport(
        record=record,
        state=status.state,
        reason=status.reason,
        days_left=status.days_left,
        certificate=certificate,
        chain=chain,
        versions=versions,
        live_version=live_version,
        paths=(live_files(ctx.store, name) or None) if live is not None else None,
        policy=_policy(record, ctx.settings.notice_days),
        validation_settings=validation_settings,
        fullchain=live["fullchain.pem"] if live is not None else None,
        next_step=_next_step(record, status.state, ctx.settings.server_url),
    )


def _next_step(record: CertRecord, state: str, server: str) -> str | None:
    """What to run about the record's order, if it has one."""
    order = record.order
    if order is None:
        return None
    if state == "order expired" or order.status == "invalid":
        return hints.replace_text(record, server)
    if order.status == "ready":
        return "validated; run: " + hints.issue(record.name)
    return "publish what is shown above, then run: " + hints.verify(record.name)


def _chain_of(chain_pem: bytes) -> list[ChainEntry]:
    """Subjects and issuers of the intermediates in the live chain.pem."""
    if not chain_pem.strip():
        return []
    from cryptography import x509

    from certctl.pki.certinfo import cert_info

    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as e:
        raise StoreError(f"the live chain.pem is damaged: {e}") from e
    entries = []
    for cert in certs:
        info = cert_info(cert)
        entries.append(
            ChainEntry(
                subject=_clean(info.subject_cn or cert.subject.rfc4514_string()),
                issuer=info.issuer,
                not_after=info.not_after,
                fingerprint=info.fingerprint_sha256,
            )
        )
    return entries


def _policy(record: CertRecord, notice_days: float) -> Policy:
    """The renewal rule and dates, from the pure policy in timing.py."""
    current = record.current
    automatic = record.source != SOURCE_UPLOAD and record.validation.automatic
    due: datetime | None = None
    notice_from: datetime | None = None
    if current is None:
        rule = "no certificate yet"
    elif automatic:
        due, rule = timing.due_at(record, timing.ari_of(record))
    elif record.source == SOURCE_UPLOAD:
        rule = "uploaded: not renewed by certctl; upload its successor with --replace"
    else:
        rule = f"{record.validation.label}: not renewed automatically; a human must re-issue it"
    if current is not None:
        window = timing.notice_window(current.not_before, current.not_after, notice_days)
        notice_from = current.not_after - window
    data = record.renewal
    failures = int(data.get("failures", 0) or 0)
    last_attempt = data.get("last_attempt")
    next_attempt = None
    if failures and isinstance(last_attempt, datetime):
        next_attempt = last_attempt + timing.backoff_delay(failures)
    next_check = data.get("ari_next_check")
    last_renewed = data.get("last_renewed")
    return Policy(
        automatic=automatic,
        rule=rule,
        due_at=due,
        notice_from=notice_from,
        renew_before_days=record.renew_before_days,
        ari=timing.ari_of(record),
        ari_next_check=next_check if isinstance(next_check, datetime) else None,
        failures=failures,
        last_attempt=last_attempt if isinstance(last_attempt, datetime) else None,
        last_error=data.get("last_error"),
        next_attempt=next_attempt,
        last_renewed=last_renewed if isinstance(last_renewed, datetime) else None,
    )


def live_fullchain(ctx: Context, name: str) -> bytes:
    """The live full chain (certificate + intermediates; never the key)."""
    ctx.store.read(name)  # NotFound first
    live = ctx.store.read_live(name)
    if live is None:
        raise BadInput(
            f"{name!r} has no certificate yet (see: {hints.show(name)}): nothing to print"
        )
    return live["fullchain.pem"]


# ---- remove -----------------------------------------------------------------


@dataclass
class RemoveReport:
    """What was removed."""

    name: str
    domains: list[str]
    versions: int
    dropped_order: OrderState | None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `remove --json`."""
        order = self.dropped_order
        return {
            "name": self.name,
            "removed": True,
            "domains": self.domains,
            "versions": self.versions,
            "pending_order": None
            if order is None
            else {"url": order.url, "status": order.status, "expires": _iso(order.expires)},
        }


def _read_for_removal(ctx: Context, name: str) -> CertRecord | None:
    """The record, None when its metadata is damaged or missing; NotFound when there is nothing."""
    check_cert_name(name)
    try:
        return ctx.store.read(name)
    except NotFound:
        if name not in ctx.store.names():  # a first order interrupted before its metadata
            raise
        return None
    except StoreError:
        return None  # damaged metadata: removing it is the way out


def remove(ctx: Context, name: str, confirm: Confirm | None) -> RemoveReport:
    """Delete a certificate and all its versions in one step, under its lock.

    `confirm` is asked first (None: already confirmed, e.g. --yes). ACME has no
    way to cancel an order: a pending one is dropped here and expires at the CA.
    """
    record = _read_for_removal(ctx, name)
    if confirm is not None:
        versions = len(ctx.store.versions(name))
        what = ", ".join(record.domains) if record is not None else "damaged entry"
        question = f"Remove {name} ({what}) with its {versions} version(s) and live files?"
        if not confirm(question):
            raise Declined(f"{name!r} was not removed: left as it was")
    with ctx.store.lock(name):
        record = _read_for_removal(ctx, name)
        versions = len(ctx.store.versions(name))
        try:
            ctx.store.remove(name)
        except OSError as e:
            raise StoreError(f"remove {name!r}: {e.strerror or e}") from e
    return RemoveReport(
        name=name,
        domains=record.domains if record is not None else [],
        versions=versions,
        dropped_order=record.order if record is not None else None,
    )


# ---- export -----------------------------------------------------------------


@dataclass
class ExportReport:
    """The files written."""

    name: str
    version: int
    directory: str
    files: dict[str, str]
    key_mode: int
    owner: str | None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `export --json`."""
        return {
            "name": self.name,
            "version": self.version,
            "directory": self.directory,
            "files": self.files,
            "key_mode": f"{self.key_mode:04o}",
            "owner": self.owner,
        }


def parse_mode(text: str) -> int:
    """An octal file mode for the exported key; never readable by others."""
    try:
        mode = int(text, 8)
    except ValueError:
        raise BadInput(f"invalid --key-mode {text!r}: give an octal mode such as 0600") from None
    if not 0 <= mode <= 0o777:
        raise BadInput(f"invalid --key-mode {text!r}: give an octal mode such as 0600")
    if mode & 0o007:
        raise BadInput(
            f"--key-mode {text} would let every user read or change the private key:"
            " use 0600 or 0640"
        )
    return mode


def _owner_ids(owner: str) -> tuple[int, int]:
    """USER[:GROUP] (names or numbers) to (uid, gid); -1 leaves one unchanged."""
    import grp
    import pwd

    user, _, group = owner.partition(":")
    uid = gid = -1
    try:
        if user:
            uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise BadInput(f"unknown user or group in --owner {owner!r}") from None
    if uid == -1 and gid == -1:
        raise BadInput(f"invalid --owner {owner!r}: give USER, USER:GROUP or :GROUP")
    mine = uid in (-1, os.geteuid()) and gid in (-1, os.getegid(), *os.getgroups())
    if os.geteuid() != 0 and not mine:
        raise BadInput(f"--owner {owner} needs root: run certctl export as root")
    return uid, gid


def export(
    ctx: Context,
    name: str,
    directory: str,
    *,
    owner: str | None = None,
    key_mode: int = KEY_MODE,
) -> ExportReport:
    """Publish the live files in `directory` as one set that is switched in at once.

    DIR/<file> are symlinks into DIR/.live, which one rename points at a complete new
    set (store/fileset.py), so a server never sees a certificate beside another's key.
    No store lock: the files are read from one immutable version, and a deploy hook
    that runs `certctl export` does so while `issue` or `renew-due` holds the lock.
    """
    from certctl.store.fileset import publish

    ctx.store.read(name)  # NotFound before anything is written
    target = Path(directory)
    if not target.is_dir():
        raise BadInput(f"{directory} is not a directory: create it first (--dir)")
    if ctx.store.owns_path(target):
        raise BadInput(f"{directory} is inside the store: export to a directory of your own")
    uid, gid = _owner_ids(owner) if owner else (-1, -1)
    version = ctx.store.live_version(name)
    if version is None:
        raise BadInput(
            f"{name!r} has no certificate yet (see: {hints.show(name)}): nothing to export"
        )
    live = ctx.store.read_version(name, version)
    files = {f: (live[f], key_mode if f == "privkey.pem" else CERT_MODE) for f in EXPORT_FILES}
    try:
        publish(target, files, (uid, gid))
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OperationFailed(f"export {name!r} to {directory}: disk full") from e
        where = e.filename or directory
        raise OperationFailed(f"export {name!r}: {where}: {e.strerror or e}") from e
    return ExportReport(
        name=name,
        version=version,
        directory=str(target.absolute()),
        files={f.removesuffix(".pem"): str((target / f).absolute()) for f in EXPORT_FILES},
        key_mode=key_mode,
        owner=owner,
    )
