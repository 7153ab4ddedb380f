"""`list` and `renew-due` over kept summaries: the same answers, without parsing.

Both backends keep each record's summary (policy/glance.py): the directory store in
index.json, the PostgreSQL store in certctl_summaries. A realistic store (the
benchmark's builder: valid, due, expiring, expired, pending, failed; uploads and ACME)
is listed and checked at several moments with an injected clock. What the summaries
give must equal what the records themselves say (`status_of`, renew-due's own
pre-filter), and once the summaries are kept neither command parses a record it does
not need: `list` none, `renew-due` only those with something to do. Counting the
parses is the proof that the fast path is taken; the timing is benchmarks/bench.py's
(renew-due-10000, list-1000, and their PostgreSQL twins).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certctl.config import Settings
from certctl.context import Context
from certctl.models import CertRecord
from certctl.ops.listing import list_certificates
from certctl.ops.renew import RenewOptions, _needs_attention, renew_due
from certctl.policy import glance, timing
from certctl.store import Store
from certctl.store import index as store_index
from certctl.store.opening import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from conftest import store_key
from storebuilder import build_store

COUNT = 120


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("summaries") / "store"
    build_store(root, count=COUNT, seed=4242)
    return root


@pytest.fixture(params=["filesystem", "postgresql"])
def store(
    request: pytest.FixtureRequest, built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A copy of the built store (directory: its records count as written long ago, so
    they may be cached), or the same certificates in a fresh PostgreSQL database."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        key = store_key(tmp_path)
        build_store(url, count=COUNT, seed=4242, key_file=key)
        store = open_store(url, key_file=key)
        yield store
        store.close()
        return
    yield request.getfixturevalue("directory_store")


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the records parsed from the index or meta.toml."""
    seen: list[str] = []
    original = CertRecord.from_dict.__func__  # type: ignore[attr-defined]

    def counting(cls: type[CertRecord], data: dict[str, Any]) -> CertRecord:
        record = original(cls, data)
        seen.append(record.name)
        return record

    monkeypatch.setattr(CertRecord, "from_dict", classmethod(counting))
    return seen


def context(store: Any, at: datetime, notice_days: float = 14.0) -> Context:
    return Context(store=store, settings=Settings(notice_days=notice_days), clock=lambda: at)


NOW = datetime.now(UTC).replace(microsecond=0)
MOMENTS = [NOW, NOW + timedelta(days=9, hours=3), NOW + timedelta(days=45), NOW - timedelta(days=3)]


def truth(store: Any, at: datetime, notice_days: float) -> dict[str, tuple[Any, ...]]:
    """Each certificate's row as its record says, read from meta.toml."""
    found = {}
    for name in store.names():
        record = store.read(name)
        status = timing.status_of(record, at, notice_days)
        found[name] = (status.state, status.reason, status.days_left, record.domains)
    return found


@pytest.mark.parametrize("notice_days", [14.0, 3.0])
def test_list_from_summaries_is_what_the_records_say_at_every_moment(
    store: Any, parses: list[str], notice_days: float
) -> None:
    list_certificates(context(store, NOW, notice_days))  # builds the index
    for at in MOMENTS:
        expected = truth(store, at, notice_days)
        parses.clear()
        listed = list_certificates(context(store, at, notice_days))
        assert parses == []  # every row from its summary
        got = {e.name: (e.state, e.reason, e.days_left, e.domains) for e in listed}
        assert got == expected
    states = {row[0] for row in truth(store, NOW, notice_days).values()}
    assert {"valid", "due", "expired", "pending order", "failed"} <= states  # a real mix


@pytest.fixture
def directory_store(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The directory store alone (index.json is its cache; PostgreSQL's: the test below)."""
    import shutil

    root = tmp_path / "store"
    shutil.copytree(built, root, symlinks=True)
    real = time.time_ns
    monkeypatch.setattr(store_index, "time_ns", lambda: real() + 3600 * 10**9)
    return Store(root)


def test_list_is_the_same_with_a_fresh_a_missing_and_a_foreign_index(
    directory_store: Store, parses: list[str]
) -> None:
    store = directory_store
    index = store.root / "index.json"
    first = [e.to_json() for e in list_certificates(context(store, NOW))]
    assert len(parses) == COUNT and index.is_file()  # no index yet: every record parsed
    parses.clear()
    assert [e.to_json() for e in list_certificates(context(store, NOW))] == first
    assert parses == []
    header = index.read_bytes().split(b"\n", 1)[0]
    assert glance.summary_key(14.0).encode() in header
    # another key (other notice days, or another certctl's policy): summaries made again
    assert len(list_certificates(context(store, NOW, notice_days=7.0))) == COUNT
    assert glance.summary_key(7.0).encode() in index.read_bytes().split(b"\n", 1)[0]
    parses.clear()
    assert [e.to_json() for e in list_certificates(context(store, NOW))] == first
    assert len(parses) == COUNT  # each cached record parsed once to summarize it again
    index.unlink()
    assert [e.to_json() for e in list_certificates(context(store, NOW))] == first


def test_renew_due_parses_only_the_records_with_something_to_do(
    store: Any, parses: list[str]
) -> None:
    options = RenewOptions(dry_run=True)
    renew_due(context(store, NOW), options)  # builds the index
    for at in MOMENTS:
        wanted = {
            name
            for name in store.names()
            if _needs_attention(store.read(name), at, 14.0, [])
            or not glance.quiet(store.read(name), at, 14.0)
        }
        parses.clear()
        report = renew_due(context(store, at), options)
        assert report.checked == COUNT
        parsed = set(parses)
        # a record is parsed for its pre-filter (and again under its lock) only when its
        # summary says renew-due may have something to do
        assert parsed == wanted, (sorted(parsed - wanted), sorted(wanted - parsed))
        acted = {o.name for o in report.outcomes}
        assert acted <= wanted
    assert 0 < len(wanted) < COUNT


def test_a_changed_record_is_summarized_again(store: Any, parses: list[str]) -> None:
    list_certificates(context(store, NOW))
    name = next(e.name for e in list_certificates(context(store, NOW)) if e.state == "valid")
    record = store.read(name)
    assert record.current is not None
    record.renew_before_days = (record.current.not_after - NOW).days + 1.0
    store.write(record)  # now due by renew_before
    parses.clear()
    rows = {e.name: e for e in list_certificates(context(store, NOW))}
    assert rows[name].state == "due"
    assert set(parses) == {name}


def test_postgresql_summaries_follow_a_record_changed_by_another_host(
    pg_url: str, tmp_path: Path, parses: list[str]
) -> None:
    """A record rewritten behind certctl's back (another host, an older certctl, SQL)
    is summarized again: a kept summary is used only for the record it was made from."""
    key = store_key(tmp_path)
    build_store(pg_url, count=20, seed=7, mix={}, key_file=key)
    store = open_store(pg_url, key_file=key)
    try:
        first = {e.name: e for e in list_certificates(context(store, NOW))}
        name = next(  # renewed automatically: renew_before makes it due
            n for n, e in sorted(first.items()) if e.source == "acme" and "manual" not in e.method
        )
        assert first[name].state == "valid"
        parses.clear()
        list_certificates(context(store, NOW))
        assert parses == []  # every summary kept
        left = first[name].days_left
        assert left is not None
        store.run(
            "edit behind certctl",
            "UPDATE certctl_certificates SET record = jsonb_set(record,"
            " '{renew_before_days}', to_jsonb(%s::float)) WHERE name = %s",
            (left + 1.0, name),
        )
        rows = {e.name: e for e in list_certificates(context(store, NOW))}
        assert rows[name].state == "due"
        assert parses == [name]  # only the changed record summarized again
        summary = store.run(
            "read", "SELECT summary FROM certctl_summaries WHERE name = %s", (name,)
        ).fetchone()[0]
        assert glance.state_at(summary, NOW)[0] == "due"  # and kept again
        # a read-only session: nothing kept, the answers are the same
        store.run("read-only", "SET default_transaction_read_only = on")
        store.run("drop", "SET default_transaction_read_only = off")
        store.run("forget", "DELETE FROM certctl_summaries")
        store.run("read-only", "SET default_transaction_read_only = on")
        again = {e.name: e.state for e in list_certificates(context(store, NOW))}
        assert again == {n: e.state for n, e in rows.items()}
        store.run("drop", "SET default_transaction_read_only = off")
        count = store.run("count", "SELECT count(*) FROM certctl_summaries").fetchone()[0]
        assert count == 0
    finally:
        store.close()


def test_a_one_off_notice_window_is_decided_on_each_record_and_keeps_nothing(
    store: Any, parses: list[str]
) -> None:
    """`renew-due --notice-days N` other than the configured window: the kept quiet spans
    (made for the configured one) are not used, every record is decided on with N, and
    the kept summaries stay those of the configured window."""
    at = NOW + timedelta(days=20)  # some certificates then between 14 and 60 days from the end
    renew_due(context(store, at), RenewOptions(dry_run=True))  # keeps 14-day summaries
    wider = RenewOptions(dry_run=True, notice_days=60.0)
    wanted = {
        n
        for n in store.names()
        if _needs_attention(store.read(n), at, 60.0, [])
        and not _needs_attention(store.read(n), at, 14.0, [])
    }
    assert wanted  # certificates only the wider window warns about
    parses.clear()
    report = renew_due(context(store, at), wider)
    assert set(parses) >= set(store.names())  # every record decided on
    assert wanted <= {o.name for o in report.outcomes}
    parses.clear()
    renew_due(context(store, at), RenewOptions(dry_run=True))
    assert wanted.isdisjoint(parses)  # the configured window's summaries are still kept
