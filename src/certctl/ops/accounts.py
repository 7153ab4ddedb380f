"""Account and revocation use cases: register (with EAB), show, deactivate, key rollover, revoke.

Like obtain.py: lock → gather inputs → decide → act → persist → report;
nothing is printed. The EAB HMAC key only ever lives in an `Eab` object whose
repr hides it; it is never stored, logged or put into an error message.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from certctl.context import Context
from certctl.errors import AcmeError, BadInput, CertctlError, NotYet, OperationFailed
from certctl.models import AccountRecord, Challenge
from certctl.pki.keys import KEY_TYPES, generate_key, load_key
from certctl.policy import hints
from certctl.policy.contact import check_email

if TYPE_CHECKING:
    from certctl.acme.session import AcmeSession

ConfirmTos = Callable[[str], bool]
Stored = tuple[AccountRecord, bytes]

DEACTIVATED = "deactivated"

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
MIN_HMAC_BYTES = 16
MAX_HMAC_FILE_BYTES = 4096


# ---- External Account Binding input ------------------------------------------


@dataclass(frozen=True)
class Eab:
    """EAB credentials (RFC 8555 §7.3.4); the HMAC key is kept out of repr."""

    kid: str
    hmac_key: str = field(repr=False)


def load_eab(
    kid: str | None,
    key_env: str | None,
    key_file: str | None,
    environ: Mapping[str, str] | None = None,
) -> Eab | None:
    """EAB credentials from --eab-kid plus the HMAC key's variable or file, checked."""
    if not kid and not key_env and not key_file:
        return None
    if not kid:
        raise BadInput("--eab-hmac-key-env/--eab-hmac-key-file need --eab-kid KID")
    if bool(key_env) == bool(key_file):
        raise BadInput(
            "--eab-kid needs the HMAC key from exactly one of --eab-hmac-key-env VAR or"
            " --eab-hmac-key-file FILE"
        )
    if key_env:
        value = (os.environ if environ is None else environ).get(key_env, "").strip()
        where = f"environment variable {key_env}"
        if not value:
            raise BadInput(f"{where} is empty or not set: it must hold the EAB HMAC key")
    else:
        assert key_file is not None
        where = f"EAB HMAC key file {key_file}"
        try:
            with open(key_file, "rb") as handle:
                raw = handle.read(MAX_HMAC_FILE_BYTES + 1)
        except OSError as e:
            raise BadInput(f"cannot read the {where}: {e.strerror}") from None
        try:
            value = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            value = "?"  # reported as not base64url below
        if len(raw) > MAX_HMAC_FILE_BYTES:
            value = "?"
    return Eab(kid=kid, hmac_key=_checked_hmac_key(value, where))


def _checked_hmac_key(value: str, where: str) -> str:
    """The key if it is base64url of at least MIN_HMAC_BYTES bytes; the error never shows it."""
    if not _BASE64URL.fullmatch(value):
        raise BadInput(f"the {where} is not base64url (A-Z a-z 0-9 - _): check the key")
    unpadded = value.rstrip("=")
    try:
        decoded = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        raise BadInput(f"the {where} is not valid base64url: check the key") from None
    if len(decoded) < MIN_HMAC_BYTES:
        raise BadInput(
            f"the {where} decodes to {len(decoded)} bytes: too short for an HMAC key;"
            " check that it is the whole key"
        )
    return unpadded


# ---- reports -----------------------------------------------------------------


@dataclass
class AccountReport:
    """An account as the store and (unless offline) the CA know it."""

    server: str
    uri: str
    status: str
    contact: list[str]
    key_type: str
    key_thumbprint: str
    created: datetime | None
    eab_kid: str | None
    source: str  # "ca": status and contact fetched from the CA; "store": offline
    existing: bool = False  # register found an account already

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `account register|show|deactivate --json`."""
        return {
            "server": self.server,
            "uri": self.uri,
            "status": self.status,
            "contact": self.contact,
            "key_type": self.key_type,
            "key_thumbprint": self.key_thumbprint,
            "created": self.created.isoformat() if self.created else None,
            "eab_kid": self.eab_kid,
            "source": self.source,
            "existing": self.existing,
        }


@dataclass
class ChangedValue:
    """A pending order's challenge whose value to publish changed with the account key."""

    name: str
    method: str  # how it is published: manual means by the user
    challenge: Challenge

    def to_json(self) -> dict[str, Any]:
        """One entry of `account rollover --json`'s pending_orders."""
        return {
            "name": self.name,
            "domain": self.challenge.domain,
            "type": self.challenge.type,
            "where": self.challenge.location,
            "value": self.challenge.validation,
            "published_by": "user" if self.method == "manual" else "certctl",
        }


@dataclass
class RolloverReport:
    """The account's key before and after a rollover, and the values to publish anew."""

    server: str
    uri: str
    old_key_type: str
    old_key_thumbprint: str
    key_type: str
    key_thumbprint: str
    pending_orders: list[ChangedValue] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `account rollover --json`."""
        return {
            "server": self.server,
            "uri": self.uri,
            "old_key_type": self.old_key_type,
            "old_key_thumbprint": self.old_key_thumbprint,
            "key_type": self.key_type,
            "key_thumbprint": self.key_thumbprint,
            "pending_orders": [c.to_json() for c in self.pending_orders],
        }


# ---- key facts ---------------------------------------------------------------


def key_type_of(key_pem: bytes) -> str:
    """ec256, ec384, rsa2048 ... for a stored key (as KEY_TYPES names them)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = load_key(key_pem, "the account key")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"ec{key.curve.key_size}"
    if isinstance(key, rsa.RSAPrivateKey):
        return f"rsa{key.key_size}"
    return type(key).__name__


def thumbprint_of(key_pem: bytes) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): names a key without revealing it."""
    from certctl.acme.session import jwk_for

    digest = jwk_for(key_pem)[0].thumbprint()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _report(record: AccountRecord, key_pem: bytes, **overrides: Any) -> AccountReport:
    values: dict[str, Any] = {
        "server": record.server,
        "uri": record.uri,
        "status": record.status,
        "contact": [f"mailto:{record.email}"] if record.email else [],
        "key_type": key_type_of(key_pem),
        "key_thumbprint": thumbprint_of(key_pem),
        "created": record.created,
        "eab_kid": record.eab_kid,
        "source": "store",
    }
    values.update(overrides)
    return AccountReport(**values)


# ---- using a stored account --------------------------------------------------


def _no_account(server: str) -> BadInput:
    return BadInput(
        f"no ACME account for {server} in the store: create one with"
        " 'certctl account register --agree-tos'"
    )


def _stored(ctx: Context, server: str) -> Stored:
    """The stored account for `server`; the 'no account' error when there is none."""
    stored = ctx.store.read_account(server) if ctx.store.exists() else None
    if stored is None:
        raise _no_account(server)
    return stored


def usable_account(
    ctx: Context, session: AcmeSession, stored: Stored, *, locked: bool = False
) -> Stored:
    """A stored account fit for use: refused when deactivated; an unsettled rollover settled."""
    record = stored[0]
    if record.status == DEACTIVATED:
        raise BadInput(
            f"the ACME account {record.uri} at {record.server} is deactivated: register a new"
            " one with 'certctl account register --agree-tos'"
        )
    if ctx.store.previous_account_key(record.server) is None:
        return stored
    if locked:
        return _settle_rollover(ctx, session, record.server)
    with ctx.store.account_lock(record.server):
        return _settle_rollover(ctx, session, record.server)


def _settle_rollover(ctx: Context, session: AcmeSession, server: str) -> Stored:
    """Ask the CA which key it accepts after an interrupted rollover; keep that one.

    RFC 8555 §7.3.5: the CA switches keys atomically, so exactly one of the two is
    bound to the account. Caller holds the account lock.
    """
    stored = ctx.store.read_account(server)
    old = ctx.store.previous_account_key(server)
    if stored is None:
        raise _no_account(server)
    if old is None:
        return stored  # settled meanwhile
    record, current = stored
    what = f"settle the interrupted key rollover of account {record.uri}"
    if session.find_account(current) is not None:
        keep_new = True
    elif old != current and session.find_account(old) is not None:
        keep_new = False
    else:
        raise AcmeError(
            f"{what}: the CA at {server} accepts neither the new nor the old key; register a"
            " new account with 'certctl account register --agree-tos'"
        )
    kept = current if keep_new else old
    ctx.store.finish_account_key_rollover(
        replace(record, key_type=key_type_of(kept)), keep_new=keep_new
    )
    which = "new" if keep_new else "old"
    ctx.reporter.info(f"settled an interrupted account key rollover: the CA uses the {which} key")
    settled = ctx.store.read_account(server)
    assert settled is not None
    return settled


def logged_in(ctx: Context, server: str, *, locked: bool = False) -> tuple[AcmeSession, Stored]:
    """A session logged in to the stored account for `server` (never creates one)."""
    stored = _stored(ctx, server)
    session = ctx.acme(server)
    stored = usable_account(ctx, session, stored, locked=locked)
    session.login(stored[1], stored[0].uri)
    return session, stored


# ---- register ----------------------------------------------------------------


@dataclass
class RegisterRequest:
    """What `certctl account register` was asked to do."""

    email: str | None = None
    agree_tos: bool = False
    eab: Eab | None = None
    key_type: str = "ec256"


def register(
    ctx: Context, request: RegisterRequest, confirm_tos: ConfirmTos | None = None
) -> AccountReport:
    """Create the account at the configured CA, or report the one that exists."""
    if request.key_type not in KEY_TYPES:
        raise BadInput(
            f"unknown key type {request.key_type!r}: choose one of {', '.join(KEY_TYPES)}"
        )
    server = ctx.settings.server_url
    email = request.email or ctx.settings.email
    if email:  # refused here, before the CA is asked (RFC 8555 §7.3: invalidContact)
        email = check_email(email, "--email" if request.email else "'email' in the config file")
    stored = ctx.store.read_account(server) if ctx.store.exists() else None
    if stored is not None and stored[0].status != DEACTIVATED:
        return _existing(ctx, stored, request)
    session = ctx.acme(server)
    if request.eab is None and session.external_account_required():
        raise BadInput(
            f"the CA at {server} requires External Account Binding: give --eab-kid and"
            " --eab-hmac-key-env VAR or --eab-hmac-key-file FILE (from your CA's dashboard)"
        )
    if not request.agree_tos:
        terms = session.terms_of_service() or "(no terms URL advertised)"
        if confirm_tos is None or not confirm_tos(terms):
            raise BadInput(f"pass --agree-tos to accept the terms of service of {server} ({terms})")
    ctx.store.ensure()
    with ctx.store.account_lock(server):
        stored = ctx.store.read_account(server)  # another run may have registered meanwhile
        if stored is not None and stored[0].status != DEACTIVATED:
            return _existing(ctx, stored, request)
        # a key left by an interrupted registration is reused (the CA may know it already);
        # a deactivated account's key is not: the CA refuses it for good
        key = ctx.store.read_account_key(server) if stored is None else None
        if key is None or key_type_of(key) != request.key_type:
            key = generate_key(request.key_type)
            ctx.store.write_account_key(server, key)  # stored 0600 before the CA sees it
        eab = request.eab
        uri = session.register(
            key,
            email=email,
            eab_kid=eab.kid if eab else None,
            eab_hmac_key=eab.hmac_key if eab else None,
        )
        record = AccountRecord(
            server=server,
            uri=uri,
            key_type=request.key_type,
            email=email,
            created=ctx.now(),
            eab_kid=eab.kid if eab else None,
        )
        ctx.store.write_account(record)
    return _report(record, key)


def _existing(ctx: Context, stored: Stored, request: RegisterRequest) -> AccountReport:
    """Report the account that exists; say so when options for a new one were given."""
    if request.email and request.email != stored[0].email:
        current = stored[0].email or "none"
        raise BadInput(
            f"an account already exists for {stored[0].server} (contact {current}):"
            f" register did not change it; to change the contact run"
            f" {hints.account_update_email(request.email)}"
        )
    if request.eab is not None:
        ctx.reporter.warn(
            f"an account already exists for {stored[0].server}: --eab-kid was not used"
        )
    return _report(*stored, existing=True)


# ---- update (contact) --------------------------------------------------------


def update(ctx: Context, email: str) -> AccountReport:
    """RFC 8555 §7.3.2: replace the account's contact at the CA, then in the store."""
    email = check_email(email)  # one address or several, comma-separated
    server = ctx.settings.server_url
    stored = _stored(ctx, server)
    with ctx.store.account_lock(server):
        stored = _stored(ctx, server)
        if stored[0].status == DEACTIVATED:
            raise BadInput(
                f"the account {stored[0].uri} is deactivated: register a new one with"
                " 'certctl account register --agree-tos'"
            )
        session, stored = logged_in(ctx, server, locked=True)
        contact = session.update_contact(email.split(","))
        record = replace(stored[0], email=email)
        ctx.store.write_account(record)
    return _report(record, stored[1], contact=contact, source="ca")


# ---- show, deactivate --------------------------------------------------------


def show(ctx: Context, *, offline: bool = False) -> AccountReport:
    """The account for the configured CA: status and contact as the CA has them."""
    server = ctx.settings.server_url
    stored = _stored(ctx, server)
    if offline or stored[0].status == DEACTIVATED:
        return _report(*stored)
    session, stored = logged_in(ctx, server)
    details = session.account_details()
    status = str(getattr(details.status, "name", details.status) or "valid")
    return _report(*stored, status=status, contact=list(details.contact), source="ca")


def deactivate(ctx: Context) -> AccountReport:
    """RFC 8555 §7.3.6: deactivate the account for good (the CA refuses it from then on)."""
    server = ctx.settings.server_url
    stored = _stored(ctx, server)
    with ctx.store.account_lock(server):
        stored = _stored(ctx, server)
        if stored[0].status == DEACTIVATED:
            return _report(*stored, existing=True)
        session, stored = logged_in(ctx, server, locked=True)
        status = session.deactivate()
        record = replace(stored[0], status=DEACTIVATED)
        ctx.store.write_account(record)
        ctx.reporter.info(f"the CA reports the account {record.uri} as {status}")
    return _report(record, stored[1], source="ca")


# ---- key rollover ------------------------------------------------------------


def rollover(ctx: Context, key_type: str | None = None) -> RolloverReport:
    """RFC 8555 §7.3.5: replace the account key at the CA, then in the store."""
    if key_type is not None and key_type not in KEY_TYPES:
        raise BadInput(f"unknown key type {key_type!r}: choose one of {', '.join(KEY_TYPES)}")
    server = ctx.settings.server_url
    _stored(ctx, server)  # the 'no account' error before the lock
    with ctx.store.account_lock(server):
        session, (record, old_key) = logged_in(ctx, server, locked=True)
        old_type = key_type_of(old_key)
        new_key = generate_key(key_type or old_type)
        new_record = replace(record, key_type=key_type or old_type)
        ctx.store.begin_account_key_rollover(new_record, new_key)
        try:
            session.change_key(new_key)
        except CertctlError as error:
            _after_failed_rollover(ctx, session, server, new_key, error)  # raises unless switched
        else:
            ctx.store.finish_account_key_rollover(new_record, keep_new=True)
        session.login(new_key, record.uri)  # this run goes on with the new key
    return RolloverReport(
        server=server,
        uri=record.uri,
        old_key_type=old_type,
        old_key_thumbprint=thumbprint_of(old_key),
        key_type=new_record.key_type,
        key_thumbprint=thumbprint_of(new_key),
        pending_orders=_republish(ctx, server, new_key),
    )


def _republish(ctx: Context, server: str, key_pem: bytes) -> list[ChangedValue]:
    """Pending orders at `server` whose values to publish the new account key changed.

    Each value is derived again (RFC 8555 §8.1: the key authorization holds the account
    key's thumbprint) and stored, so `show` prints it; `verify` derives it again anyway.
    """
    from certctl.acme.orders import challenge_validation

    changed = []
    for name in ctx.store.names():
        try:
            with ctx.store.lock(name):
                record = ctx.store.read(name)
                order = record.order
                if order is None or order.status in ("valid", "invalid"):
                    continue
                if (record.server or ctx.settings.server_url) != server:
                    continue
                found = []
                for challenge in order.challenges:
                    value = challenge_validation(challenge.type, challenge.token, key_pem)
                    if challenge.status != "valid" and value != challenge.validation:
                        challenge.validation = value
                        found.append(ChangedValue(name, record.validation.method, challenge))
                if found:
                    ctx.store.write(record)
                    changed += found
        except CertctlError as error:  # locked or damaged: 'verify' derives it again
            ctx.reporter.warn(f"{name}: pending order not checked after the rollover: {error}")
    return changed


def _after_failed_rollover(
    ctx: Context, session: AcmeSession, server: str, new_key: bytes, error: CertctlError
) -> None:
    """keyChange failed, or its answer was lost: ask the CA which key it has, keep that one."""
    try:
        _, kept = _settle_rollover(ctx, session, server)
    except CertctlError as probe:
        raise OperationFailed(
            f"{error}; whether the CA switched keys is unknown ({probe}): both keys are kept,"
            " and the next certctl run that uses the account settles it"
        ) from error
    if kept == new_key:
        return  # the CA did switch (the answer was lost): the rollover succeeded
    if isinstance(error, NotYet):
        raise error
    raise AcmeError(f"{error}; the account keeps its old key") from error
