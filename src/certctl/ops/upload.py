"""The `upload` use case: take in a certificate bought or made elsewhere.

Checks come from pki/material.py (bytes in, findings out); this module only locks,
stores a new version, switches live and reports. A refused upload changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from certctl.context import Context
from certctl.errors import BadInput
from certctl.models import SOURCE_UPLOAD, CertRecord
from certctl.policy.names import cert_name_for
from certctl.store.contract import live_files

Confirm = Callable[[str], bool]
DROP_NAMES = "--drop-names"
STOP_RENEWAL = "--stop-renewal"


@dataclass
class UploadRequest:
    """The inputs of `certctl upload` (file contents, already read)."""

    name: str
    cert: bytes | None = None
    key: bytes | None = None
    chain: bytes | None = None
    bundle: bytes | None = None
    pkcs12: bytes | None = None
    passphrase: bytes | None = field(default=None, repr=False)
    strict: bool = False
    allow_expired: bool = False
    replace: bool = False
    drop_names: bool = False  # a replacement may leave out names of the current certificate
    stop_renewal: bool = False  # a replacement may end certctl's ACME renewal
    deploy_hook: str | None = None


@dataclass
class UploadReport:
    """What was stored."""

    name: str
    names: list[str]
    issuer: str
    serial: str
    fingerprint: str
    not_before: str
    not_after: str
    days_left: float
    chain_length: int
    version: int
    key_type: str
    warnings: list[str]
    paths: dict[str, str]
    replaced: bool
    hook_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `upload --json`."""
        return {
            "name": self.name,
            "names": self.names,
            "issuer": self.issuer,
            "serial": self.serial,
            "fingerprint_sha256": self.fingerprint,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "days_left": round(self.days_left, 2),
            "chain_length": self.chain_length,
            "key_type": self.key_type,
            "version": self.version,
            "replaced": self.replaced,
            "warnings": self.warnings,
            "paths": self.paths,
            "deploy_hook_error": self.hook_error,
        }


@dataclass(frozen=True)
class _Loss:
    """What a replacement would take away, and the flag that allows it."""

    flag: str
    what: str


def _losses(record: CertRecord, names: list[str]) -> list[_Loss]:
    """What replacing `record` with a certificate for `names` loses; adding names loses nothing."""
    losses = []
    if record.source != SOURCE_UPLOAD:
        how = "automatically" if record.validation.automatic else "when you run issue"
        losses.append(
            _Loss(
                STOP_RENEWAL,
                f"end its renewal (certctl obtained it from ACME and renews it {how},"
                f" {record.validation.label}; an upload is never renewed, only watched)",
            )
        )
    dropped = [n for n in record.domains if not _covered(n, names)]
    if dropped:
        losses.append(_Loss(DROP_NAMES, f"drop {', '.join(dropped)} (not on the new certificate)"))
    return losses


def _covered(domain: str, names: list[str]) -> bool:
    """True when `names` hold `domain`, or a wildcard one label above it (RFC 6125 §6.4.3)."""
    wanted = domain.lower()
    given = {n.lower() for n in names}
    parent = wanted.partition(".")[2]
    return wanted in given or (not wanted.startswith("*.") and f"*.{parent}" in given)


def _approve(name: str, losses: list[_Loss], approved: set[str], confirm: Confirm | None) -> None:
    """Refuse losses not allowed by their flag, unless confirmed (on a terminal only)."""
    missing = [loss for loss in losses if loss.flag not in approved]
    if not missing:
        return
    what = " and ".join(loss.what for loss in missing)
    if confirm is None:
        flags = " ".join(loss.flag for loss in missing)
        raise BadInput(f"replacing {name!r} would {what}: add {flags} to replace it anyway")
    if not confirm(f"Replace {name}? That would {what}."):
        raise BadInput(f"{name!r} was not replaced")
    approved.update(loss.flag for loss in missing)


def upload(ctx: Context, request: UploadRequest, confirm: Confirm | None = None) -> UploadReport:
    """Check, then store as a new version and switch live; nothing stored when refused.

    A replacement that drops names or ends ACME renewal needs its flag
    (request.drop_names / stop_renewal) or `confirm` (given on a terminal only).
    """
    from certctl.ops.hooks import run_deploy_hook
    from certctl.ops.obtain import facts_of
    from certctl.pki.material import load_upload

    name = cert_name_for(request.name)
    if all(
        data is None
        for data in (request.cert, request.key, request.chain, request.bundle, request.pkcs12)
    ):
        raise BadInput("nothing to upload: give --cert and --key, --bundle, or --pkcs12")
    now = ctx.now()
    material = load_upload(
        cert=request.cert,
        key=request.key,
        chain=request.chain,
        bundle=request.bundle,
        pkcs12=request.pkcs12,
        passphrase=request.passphrase,
        now=now,
        strict=request.strict,
        allow_expired=request.allow_expired,
    )
    info = material.info
    exists = f"certificate {name!r} already exists: add --replace to store a new version"
    if ctx.store.has(name) and not request.replace:
        raise BadInput(exists)
    flags = ((DROP_NAMES, request.drop_names), (STOP_RENEWAL, request.stop_renewal))
    approved = {flag for flag, given in flags if given}
    if ctx.store.has(name):  # asked before the lock: nobody waits on a person
        _approve(name, _losses(ctx.store.read(name), info.names), approved, confirm)
    ctx.store.ensure()
    with ctx.store.lock(name):
        existing = ctx.store.read(name) if ctx.store.has(name) else None
        if existing is not None and not request.replace:
            raise BadInput(exists)
        if existing is not None:  # changed while we asked: what was not allowed is refused
            _approve(name, _losses(existing, info.names), approved, None)
        record = copy.deepcopy(existing) or CertRecord(
            name=name, domains=list(info.names), created=now
        )
        record.source = SOURCE_UPLOAD
        record.domains = list(info.names)
        record.key_type = info.key_type
        record.order = None
        record.revoked = False
        record.renewal = {}
        if request.deploy_hook is not None:
            record.deploy_hook = request.deploy_hook or None
        facts = facts_of(info)
        replacing_live = existing is not None and existing.current is not None
        with ctx.store.transaction():  # one commit on PostgreSQL; the live switch on files
            version = ctx.store.add_version(
                name,
                cert=material.cert_pem(),
                chain=material.chain_pem(),
                key=material.key_pem,
                facts=facts,
                record=record,
                previous=existing if replacing_live else None,
            )
            facts.version = version
            record.current = facts
            if replacing_live:
                # The live switch commits: the record goes first, and until the switch the
                # store reads the record it replaced back from the new version.
                ctx.store.write(record)
                ctx.store.switch_live(name, version)
            else:  # nothing live to fall back on: live first, a missing record is re-made
                ctx.store.switch_live(name, version)
                ctx.store.write(record)
            ctx.store.drop_pending_key(name)  # a pending ACME order under this name is void
        hook_error = run_deploy_hook(ctx, record) if existing is not None else None
    return UploadReport(
        name=name,
        names=list(info.names),
        issuer=info.issuer,
        serial=info.serial,
        fingerprint=info.fingerprint_sha256,
        not_before=info.not_before.isoformat(),
        not_after=info.not_after.isoformat(),
        days_left=(info.not_after - now).total_seconds() / 86400,
        chain_length=len(material.chain),
        version=version,
        key_type=info.key_type,
        warnings=list(material.warnings),
        paths=live_files(ctx.store, name),
        replaced=existing is not None,
        hook_error=hook_error,
    )
