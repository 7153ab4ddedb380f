"""dns-persist-01 (draft-ietf-acme-dns-persist): one TXT record, published once by the user.

The record at `_validation-persist.<domain>` names the CA (an issuer domain name
the CA lists) and certctl's account (`accounturi`), with `policy=wildcard` when it
must cover the domain's wildcard too. Nothing is published or removed per order,
so renewals need no DNS change and no DNS credentials; the self-check reads the
record at the authoritative servers and says when it names another CA or account.
"""

from __future__ import annotations

from collections.abc import Sequence

from certctl.challenges.selfcheck import Finding, txt_sources
from certctl.models import Challenge


class PersistSolver:
    """Nothing to publish per order: the record is permanent (the user published it once)."""

    def present(self, challenges: list[Challenge]) -> None:
        """Nothing: the record is already there."""

    def cleanup(self, challenges: list[Challenge]) -> None:
        """Nothing: the record stays for the next renewal."""


def check_persist(
    challenges: Sequence[Challenge], resolvers: Sequence[tuple[str, int]]
) -> list[Finding]:
    """Each dns-persist-01 record at the authoritative servers (or resolvers), as the CA would."""
    findings = []
    for challenge in challenges:
        if challenge.type != "dns-persist-01" or challenge.status == "valid":
            continue
        for source, result in txt_sources(challenge.record_name, resolvers).items():
            seen = _mismatch(challenge, result.values) if result.values else str(result.problem)
            if seen is not None:
                findings.append(
                    Finding(
                        challenge.domain,
                        f"TXT {challenge.record_name} at {source}",
                        challenge.validation,
                        seen,
                        result.failed,
                    )
                )
    return findings


def _mismatch(challenge: Challenge, values: list[str]) -> str | None:
    """Why none of `values` authorizes this account for this name; None when one does."""
    from certctl.policy.persist import parse_persist

    issuer, wanted = parse_persist(challenge.validation)
    wildcard = wanted.get("policy", "").lower() == "wildcard"
    problems = []
    for value in values:
        their_issuer, params = parse_persist(value)
        if their_issuer != issuer:
            problems.append(f"{value!r} (for another CA: {their_issuer})")
        elif params.get("accounturi") != wanted["accounturi"]:
            problems.append(
                f"{value!r} (names another account: {params.get('accounturi') or 'none'};"
                " publish the value for this account)"
            )
        elif wildcard and params.get("policy", "").lower() != "wildcard":
            base = challenge.domain.removeprefix("*.")
            problems.append(f"{value!r} (no policy=wildcard, needed for *.{base})")
        else:
            return None
    return ", ".join(problems)
