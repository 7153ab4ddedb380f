"""The `revoke` use case (RFC 8555 §7.6): signed by the account, or by the certificate's key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from certctl.context import Context
from certctl.errors import BadInput
from certctl.models import SOURCE_UPLOAD
from certctl.ops.accounts import logged_in
from certctl.policy import hints

# RFC 5280 §5.3.1 CRLReason codes that ACME CAs accept (RFC 8555 §7.6)
REVOCATION_REASONS = {
    "unspecified": 0,
    "keyCompromise": 1,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
}


@dataclass
class RevokeReport:
    """A revoked certificate."""

    name: str
    serial: str
    reason: str
    server: str
    signed_with: str  # "account" | "certificate key"
    already_revoked: bool
    next_step: str = ""

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `revoke --json`."""
        return {
            "name": self.name,
            "serial": self.serial,
            "reason": self.reason,
            "server": self.server,
            "signed_with": self.signed_with,
            "already_revoked": self.already_revoked,
            "revoked": True,
            "next_step": self.next_step,
        }


def revoke(ctx: Context, name: str, reason: str = "unspecified") -> RevokeReport:
    """RFC 8555 §7.6: revoke the live certificate, then mark it revoked (renew-due renews it).

    Signed by the account that issued it (the record's CA), or for keyCompromise by
    the certificate's own key. An uploaded certificate has no certctl account
    behind it: it can only be revoked for keyCompromise, at the configured CA.
    """
    from certctl.policy.names import check_cert_name

    if reason not in REVOCATION_REASONS:
        raise BadInput(
            f"unknown revocation reason {reason!r}: choose one of {', '.join(REVOCATION_REASONS)}"
        )
    check_cert_name(name)
    ctx.store.read(name)  # NotFound before anything is locked or created
    with ctx.store.lock(name):
        record = ctx.store.read(name)
        live = ctx.store.read_live(name)
        if live is None or record.current is None:
            raise BadInput(f"{name!r} has no certificate yet (only an order): nothing to revoke")
        own_key = reason == "keyCompromise"
        if record.source == SOURCE_UPLOAD:
            if not own_key:
                raise BadInput(
                    f"{name!r} was uploaded: revoke it through the CA that issued it; if its"
                    f" key is compromised and that CA speaks ACME, put its directory URL for"
                    f" {hints.ITS_CA} and run: {hints.revoke_with_own_key(name)}"
                )
            server = ctx.settings.server_url
        else:
            server = record.server or ctx.settings.server_url
        code = REVOCATION_REASONS[reason]
        if own_key:
            session = ctx.acme(server)
            revoked_now = session.revoke(live["cert.pem"], code, cert_key_pem=live["privkey.pem"])
        else:
            session, _ = logged_in(ctx, server)
            revoked_now = session.revoke(live["cert.pem"], code)
        record.revoked = True
        ctx.store.write(record)
    return RevokeReport(
        name=name,
        serial=record.current.serial,
        reason=reason,
        server=server,
        signed_with="certificate key" if own_key else "account",
        already_revoked=not revoked_now,
        next_step=hints.after_revocation(record, ctx.settings.server_url),
    )
