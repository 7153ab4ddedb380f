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
from certctl.ops.request import OrderRequest, ip_profile, validation_for, with_method
from certctl.ops.session import ConfirmTos, account_session
from certctl.pki.keys import generate_key, key_id_of, make_csr
from certctl.policy import hints
from certctl.policy.contact import check_email
from certctl.policy.names import (
    cert_name_for,
    default_cert_name,
    ip_address_of,
    normalize_domains,
)
from certctl.store import fault_point
from certctl.store.contract import live_files

if TYPE_CHECKING:
    from certctl.acme.session import AcmeSession
    from certctl.pki.certinfo import CertInfo
    from certctl.policy.replacing import ConfirmDrop

VERIFY_TIMEOUT = 120.0
ISSUE_TIMEOUT = 120.0


# ---- order ------------------------------------------------------------------


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
    if challenge.type in ("dns-01", "dns-persist-01"):
        return {
            "domain": challenge.domain,
            "type": challenge.type,
            "status": challenge.status,
            "record": challenge.record_name + ".",
            "record_type": "TXT",
            "value": challenge.validation,
        }
    if challenge.type == "tls-alpn-01":
        return {
            "domain": challenge.domain,
            "type": "tls-alpn-01",
            "status": challenge.status,
            "alpn": "acme-tls/1",
            "key_authorization": challenge.validation,
        }
    return {
        "domain": challenge.domain,
        "type": "http-01",
        "status": challenge.status,
        "url": f"http://{challenge.host}{challenge.record_name}",
        "content": challenge.validation,
    }


def _iso(value: datetime | None) -> str | None:
    """ISO 8601, or None."""
    return value.isoformat() if value else None


def order(
    ctx: Context,
    request: OrderRequest,
    confirm_tos: ConfirmTos | None = None,
    confirm_drop: ConfirmDrop | None = None,
) -> OrderReport:
    """Place an order: key, account, order at the CA, all state persisted."""
    prepared = _prepare(ctx, request, confirm_drop)
    with ctx.store.lock(prepared.name):
        return _order_locked(ctx, prepared, confirm_tos)


def obtain(
    ctx: Context,
    request: OrderRequest,
    timeout: float,
    confirm_tos: ConfirmTos | None = None,
    confirm_drop: ConfirmDrop | None = None,
) -> IssueReport:
    """Order, verify and issue under one lock: no other command slips in between the steps."""
    from certctl.ops.hooks import run_deploy_hook

    prepared = _prepare(ctx, request, confirm_drop)
    name = prepared.name
    with ctx.store.lock(name):
        _order_locked(ctx, prepared, confirm_tos)
        fault_point("obtain-ordered")
        _verify_locked(ctx, ctx.store.read(name), timeout)
        fault_point("obtain-verified")
        record = ctx.store.read(name)
        report = issue_locked(ctx, record, timeout)
        report.hook_error = run_deploy_hook(ctx, record)
        return report


@dataclass(frozen=True)
class _Prepared:
    """An order request, checked: what `order` and `obtain` lock and place."""

    request: OrderRequest  # with the stored method filled in when none was named
    name: str
    domains: list[str]
    validation: Validation
    server: str


def _prepare(ctx: Context, request: OrderRequest, confirm_drop: ConfirmDrop | None) -> _Prepared:
    """The order's name, domains, validation and CA, checked before anything is created."""
    from certctl.policy import replacing

    domains = normalize_domains(request.domains)
    name = cert_name_for(request.name) if request.name else default_cert_name(domains[0])
    if request.email:
        request.email = check_email(request.email)
    before = peek_record(ctx, name)
    request = with_method(request, before)
    validation = validation_for(request, domains)
    replacing.check_dropped(before, domains, request.drop_names, confirm_drop)
    server = ctx.settings.server_url
    if not request.profile and any(ip_address_of(d) for d in domains):
        request = ip_profile(ctx, server, request, before)
    if request.profile:  # refuse an unknown profile before anything is created
        offered = ctx.acme(server).profiles()
        if request.profile not in offered:
            listed = ", ".join(sorted(offered)) or "none: it does not support profiles"
            raise BadInput(
                f"the CA does not offer profile {request.profile!r} (it offers: {listed})"
            )
    ctx.store.ensure()
    return _Prepared(request, name, domains, validation, server)


def _order_locked(ctx: Context, prepared: _Prepared, confirm_tos: ConfirmTos | None) -> OrderReport:
    """Place the prepared order (its name's lock held)."""
    from certctl.policy import replacing

    request, name, domains = prepared.request, prepared.name, prepared.domains
    validation, server = prepared.validation, prepared.server
    existing = ctx.store.read(name) if ctx.store.has(name) else None
    if existing is not None and existing.source == SOURCE_UPLOAD:
        raise BadInput(
            f"{name!r} holds an uploaded certificate: choose another --name for the ACME one"
        )
    record = existing or CertRecord(name=name, domains=domains, created=ctx.now())
    warning = replacing.method_change(name, replacing.previous_validation(existing), validation)
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
    """Generate the key, place the order, record it: the record names its order's key.

    The new key is stored under its own id beside the earlier order's key, so until the
    record naming the new order is written the earlier order stays whole (issuable); a
    refused newOrder or a crash leaves at most an unused key, dropped here or next time.
    """
    key = generate_key(record.key_type)
    key_id = key_id_of(key)
    ctx.store.write_pending_key(record.name, key, key_id)  # 0600 before the CA sees the order
    try:
        new = session.new_order(
            record.domains, record.validation.challenge, profile=record.profile, replaces=replaces
        )
    except BaseException:
        ctx.store.drop_pending_key(record.name, key_id)  # no order uses it
        raise
    new.created = ctx.now()
    new.key_id = key_id
    record.order = new
    ctx.store.write(record)
    ctx.store.drop_pending_key(record.name, keep=key_id)  # the replaced order's key


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
        where = (
            c.record_name + "."
            if c.type in ("dns-01", "dns-persist-01")
            else f"acme-tls/1 at {c.host}"
            if c.type == "tls-alpn-01"
            else f"http://{c.host}{c.record_name}"
        )
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
    changed = session.refresh_validations(todo)  # derived from the current account key
    if changed:
        ctx.store.write(record)
        who = "certctl publishes it" if record.validation.automatic else "publish it"
        for challenge, _ in changed:
            ctx.reporter.warn(
                f"{record.name}: the value for {challenge.domain} changed (account key rollover"
                f" since the order): {challenge.location} must now hold {challenge.validation}"
                f" — {who}"
            )
    solver = make_solver(record.validation, ctx.reporter, ctx.store)
    resolvers = ctx.settings.resolver_addresses()
    try:
        solver.present(todo)
        with ctx.reporter.status("checking that the challenges are visible"):
            findings = selfcheck.check_http(todo, ctx.settings.check_http_port, resolvers)
            findings += selfcheck.check_tls_alpn(todo, ctx.settings.check_tls_port, resolvers)
            if any(c.type == "dns-persist-01" for c in todo):
                from certctl.challenges.dns.persist import check_persist

                findings += check_persist(todo, resolvers)
            if not findings:  # the last word before the CA is asked: CAA would refuse?
                findings += _caa_findings(session, todo, resolvers)
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


def _caa_findings(
    session: AcmeSession, todo: list[Challenge], resolvers: list[tuple[str, int]]
) -> list[Any]:
    """CAA records (RFC 8659, RFC 8657) that would make the CA refuse, when it names itself."""
    from certctl.challenges.caa import check_caa

    issuers = session.caa_identities()
    if not issuers or session.account_uri is None:
        return []  # a CA that names no issuer domain: its CAA check can't be predicted
    return check_caa(todo, issuers, session.account_uri, resolvers)


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
    from certctl.pki.issued import check_issued

    order = record.order
    assert order is not None
    key = ctx.store.read_pending_key(record.name, order.key_id)
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
    try:  # checked before anything is stored: a bad certificate never goes live
        issued = check_issued(fullchain, key, record.domains, ctx.now())
    except AcmeError as refused:
        order.status = "invalid"  # its certificate is unusable: the next issue orders afresh
        order.error = str(refused)
        ctx.store.write(record)
        kept = "the live certificate is unchanged" if record.current else "nothing was stored"
        again = (
            f"{hints.issue(record.name)} --force orders afresh"
            if record.validation.automatic
            else _again(ctx, record)
        )
        raise AcmeError(f"{refused}; refused it for {record.name!r}: {kept}; {again}") from refused
    cert_pem, chain_pem, info = issued.cert_pem, issued.chain_pem, issued.info
    facts = facts_of(info)
    with ctx.store.transaction():  # one commit on PostgreSQL; the live switch on files
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
        stale += ("ari_start", "ari_end", "ari_pick", "ari_next_check")  # ARI: the old one's
        for field_name in stale:
            record.renewal.pop(field_name, None)
        ctx.store.write(record)
        ctx.store.drop_pending_key(record.name)
    return IssueReport(
        name=record.name,
        domains=record.domains,
        version=version,
        current=record.current,
        paths=live_files(ctx.store, record.name),
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
