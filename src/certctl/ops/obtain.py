"""One function per use case: lock → gather inputs → decide → act → persist → report.

Services print nothing; they return plain report objects that the CLI renders.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from certctl.context import Context
from certctl.errors import AcmeError, BadInput, NotYet, OperationFailed
from certctl.models import (
    SOURCE_UPLOAD,
    AccountRecord,
    CertRecord,
    Challenge,
    Current,
    OrderState,
    Validation,
)
from certctl.pki.keys import KEY_TYPES, generate_key, key_id_of, make_csr
from certctl.policy.names import check_cert_name, default_cert_name, normalize_domains
from certctl.store import fault_point

if TYPE_CHECKING:
    from certctl.acme.session import AcmeSession
    from certctl.pki.certinfo import CertInfo

ConfirmTos = Callable[[str], bool]
VERIFY_TIMEOUT = 120.0
ISSUE_TIMEOUT = 120.0


# ---- accounts ---------------------------------------------------------------


def account_session(
    ctx: Context,
    server: str,
    *,
    email: str | None = None,
    agree_tos: bool = False,
    confirm_tos: ConfirmTos | None = None,
) -> AcmeSession:
    """A logged-in ACME session for `server`, creating the account on first use."""
    session = ctx.acme(server)
    if session.account_uri is not None:
        return session  # already logged in during this run: reuse its connection
    from certctl.ops.accounts import usable_account

    stored = ctx.store.read_account(server)
    if stored is not None:
        stored = usable_account(ctx, session, stored)  # deactivated? unsettled key rollover?
        session.login(stored[1], stored[0].uri)
        return session
    with ctx.store.account_lock(server):
        stored = ctx.store.read_account(server)  # another run may have created it meanwhile
        if stored is not None:
            stored = usable_account(ctx, session, stored, locked=True)
            session.login(stored[1], stored[0].uri)
            return session
        if not agree_tos:
            terms = session.terms_of_service() or "(no terms URL advertised)"
            if confirm_tos is None or not confirm_tos(terms):
                raise BadInput(
                    f"no ACME account yet at {server}: pass --agree-tos to accept the CA's"
                    f" terms of service ({terms}) and create one"
                )
        key = ctx.store.read_account_key(server)
        if key is None:
            key = generate_key("ec256")
            ctx.store.write_account_key(server, key)  # stored 0600 before the CA sees it
        uri = session.register(key, email=email or ctx.settings.email)
        ctx.store.write_account(
            AccountRecord(
                server=server, uri=uri, email=email or ctx.settings.email, created=ctx.now()
            )
        )
        ctx.reporter.info(f"created ACME account {uri}")
    return session


# ---- order ------------------------------------------------------------------


@dataclass
class OrderRequest:
    """What `certctl order` was asked to do."""

    domains: list[str]
    name: str | None = None
    challenge: str = "http"
    method: str = "manual"  # standalone | webroot | manual | rfc2136 | hook
    webroot: str | None = None
    http_port: int | None = None
    key_type: str = "ec256"
    profile: str | None = None
    email: str | None = None
    agree_tos: bool = False
    deploy_hook: str | None = None
    # DNS provider settings (solvers.dns.OPTIONS keys); secrets only by file path or env name
    dns_settings: dict[str, Any] = field(default_factory=dict)


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


def _validation_for(request: OrderRequest, domains: list[str]) -> Validation:
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
    ctx: Context, request: OrderRequest, confirm_tos: ConfirmTos | None = None
) -> OrderReport:
    """Place an order: key, account, order at the CA, all state persisted."""
    prepared = _prepare(ctx, request)
    with ctx.store.lock(prepared.name):
        return _order_locked(ctx, request, prepared, confirm_tos)


def obtain(
    ctx: Context, request: OrderRequest, confirm_tos: ConfirmTos | None, timeout: float
) -> IssueReport:
    """Order, verify and issue under one lock: no other command slips in between the steps."""
    from certctl.ops.hooks import run_deploy_hook

    prepared = _prepare(ctx, request)
    name = prepared.name
    with ctx.store.lock(name):
        _order_locked(ctx, request, prepared, confirm_tos)
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

    name: str
    domains: list[str]
    validation: Validation
    server: str


def _prepare(ctx: Context, request: OrderRequest) -> _Prepared:
    """The order's name, domains, validation and CA, checked before anything is created."""
    domains = normalize_domains(request.domains)
    name = check_cert_name(request.name) if request.name else default_cert_name(domains[0])
    validation = _validation_for(request, domains)
    server = ctx.settings.server_url
    if request.profile:  # refuse an unknown profile before anything is created
        offered = ctx.acme(server).profiles()
        if request.profile not in offered:
            listed = ", ".join(sorted(offered)) or "none: it does not support profiles"
            raise BadInput(
                f"the CA does not offer profile {request.profile!r} (it offers: {listed})"
            )
    ctx.store.ensure()
    return _Prepared(name, domains, validation, server)


def _order_locked(
    ctx: Context,
    request: OrderRequest,
    prepared: _Prepared,
    confirm_tos: ConfirmTos | None,
) -> OrderReport:
    """Place the order of `request` (its name's lock held)."""
    name, domains, validation, server = (
        prepared.name,
        prepared.domains,
        prepared.validation,
        prepared.server,
    )
    existing = ctx.store.read(name) if ctx.store.has(name) else None
    if existing is not None and existing.source == SOURCE_UPLOAD:
        raise BadInput(
            f"{name!r} holds an uploaded certificate: choose another --name for the ACME one"
        )
    record = existing or CertRecord(name=name, domains=domains, created=ctx.now())
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
    status: str
    results: dict[str, str | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `verify --json`."""
        return {
            "name": self.name,
            "status": self.status,
            "domains": [
                {"domain": d, "valid": err is None, "error": err} for d, err in self.results.items()
            ],
        }


def _usable_order(ctx: Context, record: CertRecord) -> OrderState:
    order = record.order
    if order is None:
        raise BadInput(
            f"{record.name!r} has no pending order: run 'certctl order -d {record.domains[0]}"
            f" --name {record.name}' first"
        )
    if order.status == "invalid":
        raise OperationFailed(
            f"the order for {record.name!r} failed ({order.error or 'validation failed'}):"
            f" run 'certctl order' again"
        )
    if order.expires is not None and order.expires <= ctx.now():
        raise OperationFailed(
            f"the order for {record.name!r} expired at {order.expires:%Y-%m-%d %H:%M} UTC:"
            " run 'certctl order' again"
        )
    return order


def verify(ctx: Context, name: str, timeout: float = VERIFY_TIMEOUT) -> VerifyReport:
    """Self-check the challenges, then ask the CA to validate and wait for its verdict."""
    ctx.store.read(name)  # NotFound before anything is locked or created
    with ctx.store.lock(name):
        record = ctx.store.read(name)
        return _verify_locked(ctx, record, timeout)


def _verify_locked(ctx: Context, record: CertRecord, timeout: float) -> VerifyReport:
    from certctl.challenges import make_solver, selfcheck

    order = _usable_order(ctx, record)
    session = account_session(ctx, record.server or ctx.settings.server_url)
    todo = [c for c in order.challenges if c.status != "valid"]
    report = VerifyReport(record.name, record.domains, "valid")
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
            if not getattr(solver, "waits_for_propagation", False):
                findings += selfcheck.check_dns(todo, resolvers)
        if findings:
            raise NotYet(
                "not visible yet (the CA was not asked): "
                + "; ".join(str(f) for f in findings)
                + f" — publish it, then run 'certctl verify {record.name}' again"
            )
        for challenge in todo:
            session.answer(challenge)
        deadline = time.monotonic() + timeout
        with ctx.reporter.status("waiting for the CA to validate"):
            report.results = session.wait_authorizations(order, deadline)
    finally:
        solver.cleanup(todo)
    failed = {d: e for d, e in report.results.items() if e is not None}
    if failed:
        order.status = "invalid"
        order.error = "; ".join(f"{d}: {e}" for d, e in failed.items())
        ctx.store.write(record)
        raise AcmeError(
            f"the CA could not validate {order.error}; fix it and run 'certctl order' again"
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
        }


def issue(ctx: Context, name: str, timeout: float = ISSUE_TIMEOUT) -> IssueReport:
    """Finalize the order and store the certificate; re-issue in one go when automatic."""
    ctx.store.read(name)  # NotFound before anything is locked or created
    with ctx.store.lock(name):
        record = ctx.store.read(name)
        report = issue_locked(ctx, record, timeout)
        from certctl.ops.hooks import run_deploy_hook

        report.hook_error = run_deploy_hook(ctx, record)
        return report


def issue_locked(
    ctx: Context, record: CertRecord, timeout: float, replaces: str | None = None
) -> IssueReport:
    """Issue or re-issue `record` (its lock held): resume a usable order, else place one."""
    if record.source == SOURCE_UPLOAD:
        raise BadInput(
            f"{record.name!r} was uploaded: certctl cannot re-issue it; upload its successor"
            " with 'certctl upload --replace'"
        )
    server = record.server or ctx.settings.server_url
    reordered = False
    order = record.order
    expired = order is not None and order.expires is not None and order.expires <= ctx.now()
    if order is None or order.status == "invalid" or expired:
        if not record.validation.automatic:
            _usable_order(ctx, record)  # raises the right message
            raise BadInput(f"{record.name!r} has no usable order: run 'certctl order' again")
        _check_solver(ctx, record)  # e.g. a vanished TSIG secret: fail before ordering
        session = account_session(ctx, server)
        _place_order(ctx, session, record, replaces)
        reordered = True
    order = record.order
    assert order is not None
    if any(c.status != "valid" for c in order.challenges) and order.status == "pending":
        if not record.validation.automatic:
            raise NotYet(
                f"the order for {record.name!r} is not validated yet:"
                f" run 'certctl verify {record.name}' first"
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
            f"the key of {record.name!r}'s order is missing from the store: run 'certctl order'"
            " again"
        )
    session = account_session(ctx, record.server or ctx.settings.server_url)
    deadline = time.monotonic() + timeout
    with ctx.reporter.status("waiting for the CA to issue the certificate"):
        fullchain = session.finalize(order, make_csr(key, record.domains), deadline)
    fault_point("finalize-after")
    try:  # checked before anything is stored: a bad certificate never goes live
        issued = check_issued(fullchain, key, record.domains, ctx.now())
    except AcmeError as refused:
        order.status = "invalid"  # its certificate is unusable: the next issue orders afresh
        order.error = str(refused)
        ctx.store.write(record)
        kept = "the live certificate is unchanged" if record.current else "nothing was stored"
        again = "'certctl issue' orders afresh" if record.validation.automatic else "order again"
        raise AcmeError(f"{refused}; refused it for {record.name!r}: {kept}; {again}") from refused
    cert_pem, chain_pem, info = issued.cert_pem, issued.chain_pem, issued.info
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
