"""`certctl set`: change a certificate's renewal point, deploy hook and endpoints."""

from __future__ import annotations

from certctl.context import Context
from certctl.errors import BadInput
from certctl.models import CertRecord, Endpoint
from certctl.policy.endpoints import parse_endpoint
from certctl.policy.names import check_cert_name
from certctl.policy.timing import lifetime_days, max_renew_before


def update_settings(
    ctx: Context,
    name: str,
    *,
    renew_before: str | None,
    deploy_hook: str | None,
    endpoints: list[str] | None = None,
    sni: str | None = None,
    starttls: str | None = None,
) -> CertRecord:
    """Change a certificate's renewal point, deploy hook and endpoints (None: unchanged).

    `endpoints` replaces the list (`[""]` clears it); `sni` and `starttls` apply to each.
    """
    check_cert_name(name)
    if renew_before is None and deploy_hook is None and endpoints is None:
        if sni is not None or starttls is not None:
            raise BadInput("--sni and --starttls go with --endpoint HOST[:PORT]")
        raise BadInput("nothing to change: give --renew-before, --deploy-hook and/or --endpoint")
    wanted = _endpoints(endpoints, sni, starttls)
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
        if wanted is not None:
            record.endpoints = wanted
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


def _endpoints(
    given: list[str] | None, sni: str | None, starttls: str | None
) -> list[Endpoint] | None:
    """The endpoints to record (checked, duplicates dropped), or None to keep them."""
    if given is None:
        if sni is not None or starttls is not None:
            raise BadInput("--sni and --starttls go with --endpoint HOST[:PORT]")
        return None
    if given == [""]:
        if sni is not None or starttls is not None:
            raise BadInput("--endpoint '' removes every endpoint: leave out --sni and --starttls")
        return []
    found: dict[tuple[str, int, str | None], Endpoint] = {}
    for text in given:
        endpoint = parse_endpoint(text, sni=sni, starttls=starttls)
        found.setdefault((endpoint.host, endpoint.port, endpoint.sni), endpoint)
    return list(found.values())
