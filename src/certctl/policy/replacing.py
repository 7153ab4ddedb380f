"""What a new order keeps of the certificate it replaces, and when a new one is a duplicate.

Decisions only (inputs in, answer out); ops/obtain.py acts on them:

- a new order keeps the stored validation method and its settings unless the
  user names another (a silent switch to manual validation would stop renewals);
- an order that leaves out names of the live certificate needs --drop-names or a
  "yes" on a terminal (nothing is changed or ordered otherwise);
- `issue`/`obtain` on a valid certificate that is not due keep it (certbot's
  "keep existing"): the CA allows only a few duplicates a week.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from certctl.errors import BadInput
from certctl.models import SOURCE_UPLOAD, CertRecord, Validation
from certctl.policy.timing import ari_of, due_at, renewal_wanted

ConfirmDrop = Callable[[str], bool]

_CHALLENGE_OF = {
    "standalone": "http",
    "webroot": "http",
    "fleet": "http",
    "rfc2136": "dns",
    "hook": "dns",
    "lexicon": "dns",
    "persist": "dns-persist",
}


@dataclass(frozen=True)
class MethodChoice:
    """The validation a new order uses, before ops.request.validation_for checks it."""

    challenge: str
    method: str
    webroot: str | None = None
    http_port: int | None = None
    dns_settings: dict[str, Any] = field(default_factory=dict)
    tls_port: int | None = None


def previous_validation(existing: CertRecord | None) -> Validation | None:
    """The validation of an ACME certificate already in the store, if any."""
    if existing is None or existing.source == SOURCE_UPLOAD:
        return None
    return existing.validation


def settle(
    challenge: str | None,
    method: str | None,
    webroot: str | None,
    http_port: int | None,
    dns_settings: dict[str, Any],
    old: Validation | None,
    tls_port: int | None = None,
) -> MethodChoice:
    """The method of a new order: the one named, else the stored one, else manual HTTP.

    `method` and `challenge` are None when not given. Naming the stored method again
    keeps its stored settings; options given replace them one by one.
    """
    if method is None:
        if old is None or (challenge is not None and challenge != old.challenge):
            # nothing stored, or another challenge: a new method (settings_for refuses
            # DNS settings given without a provider)
            # TLS-ALPN-01 has one method: certctl's own responder
            chosen = {"tls-alpn": "standalone", "dns-persist": "persist"}.get(
                challenge or "", "manual"
            )
            return MethodChoice(
                challenge or "http", chosen, webroot, http_port, dns_settings, tls_port
            )
        settings = {**old.settings, **dns_settings}  # e.g. only --dns-nameserver: a change
        return MethodChoice(
            old.challenge,
            old.method,
            old.webroot,
            old.http_port,
            settings,
            tls_port or old.tls_port,
        )
    challenge = challenge or _CHALLENGE_OF.get(method, "http")
    if old is None or (method, challenge) != (old.method, old.challenge):
        return MethodChoice(challenge, method, webroot, http_port, dns_settings, tls_port)
    return MethodChoice(
        challenge,
        method,
        webroot or old.webroot,
        http_port or old.http_port,
        {**old.settings, **dns_settings},
        tls_port or old.tls_port,
    )


def method_change(name: str, old: Validation | None, new: Validation) -> str | None:
    """A warning when the order moves the certificate off automatic renewal."""
    if old is None or not old.automatic or new.automatic:
        return None
    return (
        f"{name}: validation changes from {old.label} (renewed automatically) to"
        f" {new.label}: renew-due will only send notices for it; order again with the old"
        " method to go back"
    )


def check_dropped(
    existing: CertRecord | None,
    domains: list[str],
    drop_names: bool,
    confirm: ConfirmDrop | None,
) -> None:
    """Refuse (exit 2) an order that leaves out names of the live certificate, unless allowed."""
    if existing is None or existing.current is None or drop_names:
        return
    dropped = [n for n in existing.current.names if n not in domains]
    if not dropped:
        return
    listed = ", ".join(dropped)
    question = (
        f"The new certificate for {existing.name} would no longer cover {listed}. Drop"
        f" {'them' if len(dropped) > 1 else 'it'}?"
    )
    if confirm is not None and confirm(question):
        return
    keep = " ".join(f"-d {n}" for n in dropped)
    raise BadInput(
        f"{existing.name}: the new order leaves out {listed} (the live certificate covers"
        f" {', '.join(existing.current.names)}): add {keep} to keep"
        f" {'them' if len(dropped) > 1 else 'it'}, or pass --drop-names to drop"
        f" {'them' if len(dropped) > 1 else 'it'}; nothing was changed"
    )


def keep_reason(record: CertRecord, now: datetime, domains: list[str] | None = None) -> str | None:
    """Why the live certificate is kept instead of issuing a duplicate; None: issue.

    `domains`: the names the new certificate would have (default: the record's). Other
    names, or a certificate that is due, expired or revoked, warrant a new one.
    """
    current = record.current
    if record.source == SOURCE_UPLOAD or current is None:
        return None
    names = record.domains if domains is None else domains
    if current.names and set(names) != set(current.names):
        return None
    if renewal_wanted(record, now) is not None:
        return None
    due, _ = due_at(record, ari_of(record))
    return (
        f"it is valid until {current.not_after:%Y-%m-%d %H:%M} UTC and not due for renewal"
        f" before {due:%Y-%m-%d %H:%M} UTC"
    )
