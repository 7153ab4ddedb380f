"""One function per use case: lock → gather inputs → decide → act → persist → report.

Services print nothing; they return plain report objects that the CLI renders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from certctl.context import Context
from certctl.errors import AcmeError, BadInput, CertctlError, NotYet, OperationFailed
from certctl.models import (
    SOURCE_UPLOAD,
    CertRecord,
    Challenge,
    Current,
    OrderState,
    Validation,
)
from certctl.ops.session import ConfirmTos, account_session
from certctl.pki.keys import KEY_TYPES, generate_key, make_csr
from certctl.policy import hints
from certctl.policy.contact import check_email
from certctl.policy.names import (
    cert_name_for,
    default_cert_name,
    normalize_domains,
)
from certctl.store import fault_point

if TYPE_CHECKING:
    from certctl.acme.session import AcmeSession
    from certctl.pki.certinfo import CertInfo
    from certctl.policy.replacing import ConfirmDrop

VERIFY_TIMEOUT = 120.0
ISSUE_TIMEOUT = 120.0


# ---- order ------------------------------------------------------------------


@dataclass
class OrderRequest:
    """What `certctl order` was asked to do."""

    domains: list[str]
    name: str | None = None
    challenge: str | None = None  # None: the certificate's current one, else http
    method: str | None = None  # standalone | webroot | manual | rfc2136 | hook; None: keep
    webroot: str | None = None
    http_port: int | None = None
    key_type: str = "ec256"
    profile: str | None = None
    email: str | None = None
    agree_tos: bool = False
    deploy_hook: str | None = None
    # DNS provider settings (solvers.dns.OPTIONS keys); secrets only by file path or env name
    dns_settings: dict[str, Any] = field(default_factory=dict)
    drop_names: bool = False  # allow leaving out names of the live certificate


@dataclass
class OrderReport:
    """What the user must publish, and until when."""

    name: str
    domains: list[str]
    validation: Validation
    order: OrderState
    server: str

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `order --json`."""
        return {
            "name": self.name,
            "domains": self.domains,
            "status": self.order.status,
            "expires": _iso(self.order.expires),
            "validation": self.validation.label,
            "challenges": [challenge_json(c) for c in self.order.challenges],
        }


def challenge_json(challenge: Challenge) -> dict[str, Any]:
    """What must be published for one challenge, as `order --json` and `show --json` give it."""
    if challenge.type == "dns-01":
        return {
            "domain": challenge.domain,
            "type": "dns-01",
            "status": challenge.status,
            "record": challenge.record_name + ".",
            "record_type": "TXT",
            "value": challenge.validation,
        }
    return {
        "domain": challenge.domain,
        "type": "http-01",
        "status": challenge.status,
        "url": f"http://{challenge.domain}{challenge.record_name}",
        "content": challenge.validation,
    }


def _iso(value: datetime | None) -> str | None:
    """ISO 8601, or None."""
    return value.isoformat() if value else None


def with_method(request: OrderRequest, existing: CertRecord | None) -> OrderRequest:
    """The request with its validation method settled: the one named, else the stored one."""
    from dataclasses import replace

    from certctl.policy.replacing import previous_validation, settle

    old = previous_validation(existing)
    chosen = settle(
        request.challenge,
        request.method,
        request.webroot,
        request.http_port,
        request.dns_settings,
        old,
    )
    return replace(request, **vars(chosen))


def validation_for(request: OrderRequest, domains: list[str]) -> Validation:
    assert request.method is not None
    if request.challenge not in ("http", "dns"):
        raise BadInput(f"unknown challenge {request.challenge!r}: use http or dns")
    if request.key_type not in KEY_TYPES:
        raise BadInput(
            f"unknown key type {request.key_type!r}: choose one of {', '.join(KEY_TYPES)}"
        )
    if request.challenge == "http":
        wildcards = [d for d in domains if d.startswith("*.")]
        if wildcards:
            raise BadInput(
                f"{wildcards[0]} is a wildcard: wildcards need DNS validation; use --challenge dns"
            )
    elif request.method in ("standalone", "webroot"):
        raise BadInput(
            f"--{request.method} is for HTTP validation; drop it or use --challenge http"
        )
    if request.method in ("rfc2136", "hook") and request.challenge != "dns":
        raise BadInput(f"--dns-provider {request.method} needs --challenge dns")
    from certctl.challenges.dns.settings import settings_for

    settings = settings_for(request.method, request.dns_settings)
    if request.method == "webroot":
        if not request.webroot:
            raise BadInput("--webroot needs a directory")
        from pathlib import Path

        if not Path(request.webroot).is_dir():
            raise BadInput(f"webroot {request.webroot} is not a directory: check --webroot")
    if request.http_port is not None and not 0 < request.http_port < 65536:
        raise BadInput(f"invalid --http-port {request.http_port}: expected 1-65535")
    return Validation(
        challenge=request.challenge,  # type: ignore[arg-type]
        method=request.method,
        webroot=str(Path(request.webroot).resolve()) if request.webroot else None,
        http_port=request.http_port if request.method == "standalone" else None,
        settings=settings,
    )


def order(
    ctx: Context,
    request: OrderRequest,
    confirm_tos: ConfirmTos | None = None,
    confirm_drop: ConfirmDrop | None = None,
) -> OrderReport:
    """Place an order: key, account, order at the CA, all state persisted."""
    from certctl.policy import replacing as reuse

    domains = normalize_domains(request.domains)
    name = cert_name_for(request.name) if request.name else default_cert_name(domains[0])
    if request.email:
        request.email = check_email(request.email)
    before = peek_record(ctx, name)
    request = with_method(request, before)
    validation = validation_for(request, domains)
    reuse.check_dropped(before, domains, request.drop_names, confirm_drop)
    server = ctx.settings.server_url
    if request.profile:  # refuse an unknown profile before anything is created
        offered = ctx.acme(server).profiles()
        if request.profile not in offered:
            listed = ", ".join(sorted(offered)) or "none: it does not support profiles"
            raise BadInput(
                f"the CA does not offer profile {request.profile!r} (it offers: {listed})"
            )
    ctx.store.ensure()
    with ctx.store.lock(name):
        existing = ctx.store.read(name) if ctx.store.has(name) else None
        if existing is not None and existing.source == SOURCE_UPLOAD:
            raise BadInput(
                f"{name!r} holds an uploaded certificate: choose another --name for the ACME one"
            )
        record = existing or CertRecord(name=name, domains=domains, created=ctx.now())
        warning = reuse.method_change(name, reuse.previous_validation(existing), validation)
        if warning is not None:
            ctx.reporter.warn(warning)
        record.domains = domains
        record.key_type = request.key_type
        record.server = server
        record.profile = request.profile
        record.validation = validation
        if request.deploy_hook is not None:
            record.deploy_hook = request.deploy_hook or None
        session = account_session(
            ctx, server, email=request.email, agree_tos=request.agree_tos, confirm_tos=confirm_tos
        )
        _place_order(ctx, session, record)
        return OrderReport(name, domains, validation, record.order, server)  # type: ignore[arg-type]


def peek_record(ctx: Context, name: str) -> CertRecord | None:
    """The stored record of `name`, if any, read without its lock (to decide early)."""
    if not ctx.store.exists() or not ctx.store.has(name):
        return None
    return ctx.store.read(name)


def _place_order(
    ctx: Context, session: AcmeSession, record: CertRecord, replaces: str | None = None
) -> None:
    """Generate the key, place the order and persist both (key first)."""
    ctx.store.write_pending_key(record.name, generate_key(record.key_type))
    new = session.new_order(
        record.domains, record.validation.challenge, profile=record.profile, replaces=replaces
    )
    new.created = ctx.now()
    record.order = new
    ctx.store.write(record)


# ---- verify -----------------------------------------------------------------


@dataclass
class VerifyReport:
    """The CA's verdict on each domain."""

    name: str
    domains: list[str]
    status: str  # valid | pending (not visible: the CA was not asked) | invalid | error
    results: dict[str, str | None] = field(default_factory=dict)
    selfcheck: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `verify --json` (printed whatever the outcome)."""
        return {
            "name": self.name,
            "status": self.status,
            "domains": [
                {"domain": d, "valid": err is None, "error": err} for d, err in self.results.items()
            ],
            "selfcheck": self.selfcheck,
            "error": self.error,
        }


class VerifyFailed(CertctlError):
    """verify did not validate: the cause's message and exit code, with the report."""

    def __init__(self, cause: CertctlError, report: VerifyReport) -> None:
        super().__init__(str(cause))
        self.exit_code = cause.exit_code
        self.report = report


def _selfcheck_json(todo: list[Challenge], findings: list[Any], dns: bool) -> list[dict[str, Any]]:
    """What the self-check looked at and saw, per challenge (DNS: unless the solver waited)."""
    entries = []
    for c in todo:
        if c.type == "dns-01" and not dns:
            continue
        seen = [f"{f.where}: saw {f.seen}" for f in findings if f.domain == c.domain]
        where = c.record_name + "." if c.type == "dns-01" else f"http://{c.domain}{c.record_name}"
        entry = {"domain": c.domain, "type": c.type, "where": where, "expected": c.validation}
        entries.append({**entry, "visible": not seen, "problems": seen})
    return entries


def _again(ctx: Context, record: CertRecord) -> str:
    """How to get this certificate by hand now, ending in a command that works when pasted."""
    return hints.replace_text(record, ctx.settings.server_url)


def _usable_order(ctx: Context, record: CertRecord) -> OrderState:
    order = record.order
    if order is None:
        if record.source == SOURCE_UPLOAD:
            raise BadInput(
                f"{record.name!r} was uploaded: it has no order to verify; {_again(ctx, record)}"
            )
        raise BadInput(f"{record.name!r} has no pending order: {_again(ctx, record)}")
    if order.status == "invalid":
        raise OperationFailed(
            f"the order for {record.name!r} failed ({order.error or 'validation failed'}):"
            f" {_again(ctx, record)}"
        )
    if order.expires is not None and order.expires <= ctx.now():
        raise OperationFailed(
            f"the order for {record.name!r} expired at {order.expires:%Y-%m-%d %H:%M} UTC:"
            f" {_again(ctx, record)}"
        )
    return order


def verify(ctx: Context, name: str, timeout: float = VERIFY_TIMEOUT) -> VerifyReport:
    """Self-check the challenges, then ask the CA to validate and wait for its verdict.

    Failures other than bad input raise VerifyFailed, which carries the report.
    """
    report = VerifyReport(name, ctx.store.read(name).domains, "valid")  # NotFound: nothing locked
    try:
        with ctx.store.lock(name):
            record = ctx.store.read(name)
            return _verify_locked(ctx, record, timeout, report)
    except BadInput:
        raise
    except CertctlError as e:
        failed = any(err is not None for err in report.results.values())
        hidden = any(not entry["visible"] for entry in report.selfcheck)
        report.status = "invalid" if failed else "pending" if hidden else "error"
        report.error = str(e)
        raise VerifyFailed(e, report) from e


def _verify_locked(
    ctx: Context, record: CertRecord, timeout: float, report: VerifyReport | None = None
) -> VerifyReport:
    from certctl.challenges import make_solver, selfcheck

    order = _usable_order(ctx, record)
    session = account_session(ctx, record.server or ctx.settings.server_url)
    todo = [c for c in order.challenges if c.status != "valid"]
    report = report or VerifyReport(record.name, record.domains, "valid")
    if not todo:
        return _mark_ready(ctx, record, report)
    solver = make_solver(record.validation, ctx.reporter, ctx.store)
    resolvers = ctx.settings.resolver_addresses()
    try:
        solver.present(todo)
        with ctx.reporter.status("checking that the challenges are visible"):
            findings = selfcheck.check_http(todo, ctx.settings.check_http_port, resolvers)
            dns_checked = not getattr(solver, "waits_for_propagation", False)
            if dns_checked:
                findings += selfcheck.check_dns(todo, resolvers)
        report.selfcheck = _selfcheck_json(todo, findings, dns_checked)
        if findings:
            raise NotYet(
                "not visible yet (the CA was not asked): "
                + "; ".join(str(f) for f in findings)
                + selfcheck.next_step(findings, record.name)
            )
        for challenge in todo:
            session.answer(challenge)
        deadline = time.monotonic() + timeout
        with ctx.reporter.status("waiting for the CA to validate"):
            try:
                report.results = session.wait_authorizations(order, deadline)
            except NotYet as e:
                raise NotYet(f"{e}: run again later: {hints.verify(record.name)}") from e
    finally:
        solver.cleanup(todo)
    failed = {d: e for d, e in report.results.items() if e is not None}
    if failed:
        order.status = "invalid"
        order.error = "; ".join(f"{d}: {e}" for d, e in failed.items())
        ctx.store.write(record)
        raise AcmeError(
            f"the CA could not validate {order.error}; fix it, then {_again(ctx, record)}"
        )
    return _mark_ready(ctx, record, report)


def _check_solver(ctx: Context, record: CertRecord) -> None:
    """Let the solver refuse early (unreadable secret, missing webroot) before an order."""
    from certctl.challenges import make_solver

    check = getattr(make_solver(record.validation, ctx.reporter, ctx.store), "check", None)
    if check is not None:
        check()


def _mark_ready(ctx: Context, record: CertRecord, report: VerifyReport) -> VerifyReport:
    assert record.order is not None
    for challenge in record.order.challenges:
        challenge.status = "valid"
        report.results.setdefault(challenge.domain, None)
    record.order.status = "ready"
    ctx.store.write(record)
    return report


# ---- issue ------------------------------------------------------------------


@dataclass
class IssueReport:
    """The stored certificate."""

    name: str
    domains: list[str]
    version: int
    current: Current
    paths: dict[str, str]
    reordered: bool = False
    hook_error: str | None = None
    action: str = "issued"  # issued | kept (valid and not due: no duplicate without --force)
    reason: str | None = None  # why it was kept

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `issue --json`."""
        return {
            "name": self.name,
            "domains": self.domains,
            "version": self.version,
            "serial": self.current.serial,
            "issuer": self.current.issuer,
            "not_before": self.current.not_before.isoformat(),
            "not_after": self.current.not_after.isoformat(),
            "fingerprint_sha256": self.current.fingerprint,
            "paths": self.paths,
            "deploy_hook_error": self.hook_error,
            "new_order": self.reordered,
            "action": self.action,
            "reason": self.reason,
        }


def issue_locked(
    ctx: Context, record: CertRecord, timeout: float, replaces: str | None = None
) -> IssueReport:
    """Issue or re-issue `record` (its lock held): resume a usable order, else place one."""
    if record.source == SOURCE_UPLOAD:
        raise BadInput(
            f"{record.name!r} was uploaded: certctl cannot re-issue it; {_again(ctx, record)}"
        )
    server = record.server or ctx.settings.server_url
    reordered = False
    order = record.order
    expired = order is not None and order.expires is not None and order.expires <= ctx.now()
    if order is None or order.status == "invalid" or expired:
        if not record.validation.automatic:
            _usable_order(ctx, record)  # raises the right message
            raise BadInput(f"{record.name!r} has no usable order: {_again(ctx, record)}")
        _check_solver(ctx, record)  # e.g. a vanished TSIG secret: fail before ordering
        session = account_session(ctx, server)
        _place_order(ctx, session, record, replaces)
        reordered = True
    order = record.order
    assert order is not None
    if any(c.status != "valid" for c in order.challenges) and order.status == "pending":
        if not record.validation.automatic:
            # exit 2, not 3: retrying 'issue' never helps, 'verify' has to run first
            raise BadInput(
                f"the order for {record.name!r} is not validated yet: validate it first:"
                f" {hints.verify(record.name)}"
            )
        _verify_locked(ctx, record, timeout)
    return _finalize_and_store(ctx, record, timeout, reordered)


def _finalize_and_store(
    ctx: Context, record: CertRecord, timeout: float, reordered: bool
) -> IssueReport:
    from cryptography import x509

    from certctl.pki.certinfo import key_matches
    from certctl.pki.keys import load_key
    from certctl.pki.material import cert_info_pem

    order = record.order
    assert order is not None
    key = ctx.store.read_pending_key(record.name)
    if key is None:
        raise OperationFailed(
            f"the key of {record.name!r}'s order is missing from the store: {_again(ctx, record)}"
        )
    session = account_session(ctx, record.server or ctx.settings.server_url)
    deadline = time.monotonic() + timeout
    with ctx.reporter.status("waiting for the CA to issue the certificate"):
        try:
            fullchain = session.finalize(order, make_csr(key, record.domains), deadline)
        except NotYet as e:  # still processing, or not validated: the same command resumes
            step = (
                hints.issue if record.order and record.order.status != "pending" else hints.verify
            )
            raise NotYet(f"{e}: run again later: {step(record.name)}") from e
    fault_point("finalize-after")
    cert_pem, chain_pem = split_chain(fullchain)
    info = cert_info_pem(cert_pem)
    if not key_matches(x509.load_pem_x509_certificate(cert_pem), load_key(key, "the order key")):
        raise AcmeError("the CA returned a certificate for another key; nothing was stored")
    missing = set(record.domains) - set(info.names)
    if missing:
        raise AcmeError(f"the certificate lacks {', '.join(sorted(missing))}; nothing was stored")
    facts = facts_of(info)
    # a crash after storing the version but before the live switch left it complete:
    # use it instead of storing the same certificate twice
    version = ctx.store.unswitched_version(record.name, cert_pem, key) or ctx.store.add_version(
        record.name, cert=cert_pem, chain=chain_pem, key=key, facts=facts
    )
    ctx.store.switch_live(record.name, version)
    facts.version = version
    record.current = facts
    record.order = None
    record.revoked = False
    # a clean slate
    stale: tuple[str, ...] = ("failures", "last_error", "last_attempt", "not_before_retry")
    stale += ("ari_start", "ari_end", "ari_pick", "ari_next_check")  # ARI was for the old one
    for field_name in stale:
        record.renewal.pop(field_name, None)
    ctx.store.write(record)
    ctx.store.drop_pending_key(record.name)
    return IssueReport(
        name=record.name,
        domains=record.domains,
        version=version,
        current=record.current,
        paths=ctx.store.live_paths(record.name).as_dict(),
        reordered=reordered,
    )


def facts_of(info: CertInfo) -> Current:
    """What the store keeps about a certificate (version filled in when stored)."""
    return Current(
        version=0,
        serial=info.serial,
        not_before=info.not_before,
        not_after=info.not_after,
        issuer=info.issuer,
        fingerprint=info.fingerprint_sha256,
        names=list(info.names),
    )


def split_chain(fullchain: str) -> tuple[bytes, bytes]:
    """Split a PEM chain into the leaf and the rest."""
    marker = "-----END CERTIFICATE-----"
    end = fullchain.find(marker)
    if end < 0:
        raise AcmeError("the CA returned no certificate")
    end += len(marker)
    leaf = fullchain[:end].strip() + "\n"
    rest = fullchain[end:].strip()
    return leaf.encode(), (rest + "\n").encode() if rest else b""
