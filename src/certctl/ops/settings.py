"""`certctl set`: change a certificate's renewal point and deploy hook."""

from __future__ import annotations

from certctl.context import Context
from certctl.errors import BadInput
from certctl.models import CertRecord
from certctl.policy.names import check_cert_name
from certctl.policy.timing import lifetime_days, max_renew_before


def update_settings(
    ctx: Context, name: str, *, renew_before: str | None, deploy_hook: str | None
) -> CertRecord:
    """Change a certificate's renewal point and deploy hook."""
    check_cert_name(name)
    if renew_before is None and deploy_hook is None:
        raise BadInput("nothing to change: give --renew-before and/or --deploy-hook")
    days: float | None = None
    if renew_before is not None and renew_before != "default":
        try:
            days = float(renew_before)
        except ValueError:
            days = -1
        if not 0 < days <= 3650:
            raise BadInput(
                f"invalid --renew-before {renew_before!r}: give days (e.g. 20) or 'default'"
            )
    ctx.store.read(name)
    with ctx.store.lock(name):
        record = ctx.store.read(name)
        if renew_before is not None:
            _check_renew_before(record, days)
            record.renew_before_days = days
        if deploy_hook is not None:
            record.deploy_hook = deploy_hook or None
        ctx.store.write(record)
    return record


def _check_renew_before(record: CertRecord, days: float | None) -> None:
    """Refuse a renewal point that makes a fresh certificate due at once (a renewal loop)."""
    current = record.current
    if days is None or current is None:
        return
    largest = max_renew_before(current.not_before, current.not_after)
    if days > largest:
        lifetime = lifetime_days(current.not_before, current.not_after)
        raise BadInput(
            f"--renew-before {days:g} would make every new certificate of {record.name} due"
            f" at once (its certificates live {lifetime:.4g} days): give at most {largest:g}, or"
            " 'default'"
        )
