"""A logged-in ACME session for order, verify and issue, creating the account on first use."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from certctl.context import Context
from certctl.errors import BadInput
from certctl.models import AccountRecord
from certctl.pki.keys import generate_key
from certctl.policy.contact import check_email

if TYPE_CHECKING:
    from certctl.acme.session import AcmeSession

ConfirmTos = Callable[[str], bool]


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
        contact = email or ctx.settings.email
        if contact:
            contact = check_email(contact, "--email (or 'email' in the config file)")
        key = ctx.store.read_account_key(server)
        if key is None:
            key = generate_key("ec256")
            ctx.store.write_account_key(server, key)  # stored 0600 before the CA sees it
        uri = session.register(key, email=contact)
        ctx.store.write_account(
            AccountRecord(server=server, uri=uri, email=contact, created=ctx.now())
        )
        ctx.reporter.info(f"created ACME account {uri}")
    return session
