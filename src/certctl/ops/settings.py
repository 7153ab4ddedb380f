"""The `set` use case: change a certificate's renewal point and deploy hook."""

from __future__ import annotations

from certctl.context import Context
from certctl.errors import BadInput
from certctl.models import CertRecord
from certctl.policy.names import check_cert_name


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
            record.renew_before_days = days
            current = record.current
            if days is not None and current is not None:
                lifetime = (current.not_after - current.not_before).total_seconds() / 86400
                if days >= lifetime:
                    ctx.reporter.warn(
                        f"{name}: renew_before {days:g} days is not shorter than the"
                        f" certificate's lifetime ({lifetime:.0f} days): every renew-due run"
                        " will renew it"
                    )
        if deploy_hook is not None:
            record.deploy_hook = deploy_hook or None
        ctx.store.write(record)
    return record
