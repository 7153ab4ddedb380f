"""`issue` and `obtain` as the user runs them: no duplicate of a valid certificate.

Let's Encrypt allows five duplicate certificates a week: re-running `issue NAME`
or `obtain` on a certificate that is valid and not due keeps it (certbot's "keep
existing") unless --force. An order the user placed is always finished: only
a new order would be a duplicate. renew-due does not come through here.
"""

from __future__ import annotations

from certctl.context import Context
from certctl.errors import BadInput
from certctl.models import AUTOMATIC_METHODS, SOURCE_UPLOAD, CertRecord
from certctl.ops import obtain as steps
from certctl.ops.obtain import IssueReport
from certctl.ops.request import OrderRequest, validation_for, with_method
from certctl.ops.session import ConfirmTos
from certctl.policy.contact import check_email
from certctl.policy.names import cert_name_for, default_cert_name, normalize_domains
from certctl.policy.replacing import ConfirmDrop, keep_reason, method_change
from certctl.store.contract import live_files


def issue(
    ctx: Context, name: str, timeout: float = steps.ISSUE_TIMEOUT, *, force: bool = False
) -> IssueReport:
    """`certctl issue`: finish the pending order; else re-issue, or keep one not due."""
    ctx.store.read(name)  # NotFound before anything is locked or created
    with ctx.store.lock(name):
        record = ctx.store.read(name)
        kept = None if force or _resumable(ctx, record) else _kept(ctx, record)
        if kept is not None:
            return kept
        report = steps.issue_locked(ctx, record, timeout)
        from certctl.ops.hooks import run_deploy_hook

        report.hook_error = run_deploy_hook(ctx, record)
        return report


def obtain(
    ctx: Context,
    request: OrderRequest,
    timeout: float = steps.ISSUE_TIMEOUT,
    *,
    force: bool = False,
    confirm_tos: ConfirmTos | None = None,
    confirm_drop: ConfirmDrop | None = None,
) -> IssueReport:
    """`certctl obtain`: order, verify and issue in one go; keep a valid one not due."""
    kept = _keep_instead(ctx, request, force)
    if kept is not None:
        return kept
    return steps.obtain(ctx, request, timeout, confirm_tos, confirm_drop)


def _resumable(ctx: Context, record: CertRecord) -> bool:
    """True when the record has an order that `issue` can still finish (or explain)."""
    order = record.order
    if not record.validation.automatic:
        return True  # issue finishes the user's order, or says what to run: never re-orders
    if order is None or order.status == "invalid":
        return False
    return order.expires is None or order.expires > ctx.now()


def _kept(ctx: Context, record: CertRecord, domains: list[str] | None = None) -> IssueReport | None:
    """The report for keeping the live certificate, or None when a new one is wanted."""
    reason = keep_reason(record, ctx.now(), domains)
    if reason is None or record.current is None:
        return None
    return IssueReport(
        name=record.name,
        domains=record.domains,
        version=record.current.version,
        current=record.current,
        paths=live_files(ctx.store, record.name),
        action="kept",
        reason=reason,
    )


def _keep_instead(ctx: Context, request: OrderRequest, force: bool) -> IssueReport | None:
    """Obtain's duplicate check: the same names, key type and profile, valid and not due.

    A changed validation method or deploy hook is stored for the next renewal.
    """
    domains = normalize_domains(request.domains)
    name = cert_name_for(request.name) if request.name else default_cert_name(domains[0])
    if request.email:
        check_email(request.email)
    before = steps.peek_record(ctx, name)
    if with_method(request, before).method not in AUTOMATIC_METHODS:
        raise BadInput(
            "obtain needs automatic validation: add --standalone, --webroot DIR or"
            " --challenge dns --dns-provider rfc2136|hook|lexicon"
        )
    if force or before is None or before.source == SOURCE_UPLOAD:
        return None
    if (request.key_type, request.profile) != (before.key_type, before.profile):
        return None
    with ctx.store.lock(name):
        record = ctx.store.read(name)
        kept = _kept(ctx, record, domains)
        if kept is None:
            return None
        validation = validation_for(with_method(request, record), domains)
        hook = record.deploy_hook if request.deploy_hook is None else request.deploy_hook or None
        if (validation, hook) != (record.validation, record.deploy_hook):
            warning = method_change(name, record.validation, validation)
            if warning is not None:
                ctx.reporter.warn(warning)
            record.validation, record.deploy_hook = validation, hook
            ctx.store.write(record)
            ctx.reporter.info(f"{name}: settings stored for the next renewal")
        return kept
