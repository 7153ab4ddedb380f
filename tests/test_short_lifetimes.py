"""Short lifetimes (Let's Encrypt `shortlived`, 6 days): renew-due renews at the right moment.

Pebble issues from short-validity profiles; certctl's clock is injected (in-process
runs), and renew-due runs just before and just after the moment its policy names.
A 6-day certificate is due about 3 days on, beyond the 24 hours Pebble's orders
live, so its renewal past that moment is shown by --dry-run; a 36-hour one (the
same short-lifetime rule) is renewed for real.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta

import pytest

from certctl import context as context_module
from certctl.context import Context
from certctl.policy.timing import ari_of, due_at

from conftest import Certctl, standalone, unique
from pebble import DEFAULT_PROFILES, PebbleServer, require_pebble

pytestmark = pytest.mark.pebble
PROFILES = {**DEFAULT_PROFILES, "brief": {"description": "36 hours", "validityPeriod": 129600}}


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleServer]:
    require_pebble()
    with PebbleServer(tmp_path_factory.mktemp("pebble"), profiles=PROFILES) as server:
        yield server


def _issue(certctl: Certctl, pebble: PebbleServer, profile: str) -> tuple[str, datetime]:
    """Issue from `profile`; the moment renew-due's policy makes it due."""
    domain = unique()
    proc = certctl.run("obtain", "-d", domain, *standalone(pebble), "--profile", profile)
    assert proc.returncode == 0, proc.stderr
    assert certctl.run("renew-due").returncode == 0  # stores the CA's renewal window (ARI)
    with closing(certctl.open()) as store:
        record = store.read(domain)
    current = record.current
    assert current is not None
    lifetime = current.not_after - current.not_before
    due, why = due_at(record, ari_of(record))
    # a short certificate is due in the second half of its life, before it expires
    assert current.not_before + lifetime / 2 - timedelta(minutes=1) <= due < current.not_after, why
    return domain, due


def _at(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    """certctl's clock (in-process runs) reads `moment` from now on."""
    monkeypatch.setattr(context_module, "Context", functools.partial(Context, clock=lambda: moment))


def _version(certctl: Certctl, name: str) -> int:
    with closing(certctl.open()) as store:
        current = store.read(name).current
    assert current is not None
    return current.version


def test_six_day_certificate_is_due_half_way_not_before(
    certctl: Certctl, pebble: PebbleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    domain, due = _issue(certctl, pebble, "shortlived")
    with closing(certctl.open()) as store:
        current = store.read(domain).current
    assert current is not None
    assert abs(current.not_after - current.not_before - timedelta(days=6)) <= timedelta(seconds=1)
    _at(monkeypatch, due - timedelta(minutes=5))
    before = certctl.invoke("renew-due", "--dry-run")
    assert before.exit_code == 0 and "would renew" not in before.output, before.output
    _at(monkeypatch, due + timedelta(minutes=5))
    after = certctl.invoke("renew-due", "--dry-run")
    assert after.exit_code == 0 and f"{domain}: would renew" in after.output, after.output
    assert _version(certctl, domain) == 1


def test_short_certificate_renewed_by_renew_due_at_its_moment(
    certctl: Certctl, pebble: PebbleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    domain, due = _issue(certctl, pebble, "brief")
    _at(monkeypatch, due - timedelta(minutes=5))
    assert certctl.invoke("renew-due").exit_code == 0
    assert _version(certctl, domain) == 1
    _at(monkeypatch, due + timedelta(minutes=5))
    after = certctl.invoke("renew-due")
    assert after.exit_code == 0, after.output
    assert _version(certctl, domain) == 2
    with closing(certctl.open()) as store:
        renewed = store.read(domain)
    assert renewed.profile == "brief" and renewed.current is not None
    lifetime = renewed.current.not_after - renewed.current.not_before
    assert abs(lifetime - timedelta(hours=36)) <= timedelta(seconds=1)
