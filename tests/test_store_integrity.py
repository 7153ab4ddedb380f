"""What the store trusts on disk: temp-file names, the live symlink and the list cache.

- Temp files are recognised by exact patterns that no certificate name can match, so
  `doctor` never calls a real certificate a leftover (names start with a letter or digit).
- `live` is accepted only as `versions/<n>`, relative and inside the certificate.
- index.json is a cache: a hand edit, a damaged or odd file, or a record edited behind
  its stamp is never trusted; the cache is rebuilt from meta.toml.
- On PostgreSQL (no files), `doctor` finds damage in the database: a record that does
  not parse, a live key that does not match, a pending order without its key, an
  interrupted account rollover; without the store key it says the keys went unchecked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certctl.errors import StoreError
from certctl.models import AccountRecord, CertRecord, OrderState
from certctl.store import Store
from certctl.store import index as store_index
from certctl.store.files import write_temp

import storeview
from certfactory import make_leaf, private_key
from conftest import CERTCTL, Certctl, store_key
from postgres import PostgresServer


@pytest.fixture(autouse=True)
def _fresh_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """render.console() caches a Console per stream id; CliRunner swaps streams per run."""
    from certctl.cli import render

    monkeypatch.setattr(render, "_consoles", {}, raising=False)


def upload(certctl: Certctl, name: str, tmp_path: Path, left: float | None = None) -> None:
    """Upload a 90-day certificate for <name>.example.com, with `left` days to go if given."""
    not_after = datetime.now(UTC).replace(microsecond=0) + timedelta(days=left) if left else None
    bundle = tmp_path / f"{name}.pem"
    bundle.write_bytes(make_leaf(f"{name}.example.com", not_after=not_after).bundle_pem())
    proc = certctl.run("upload", name, "--bundle", str(bundle))
    assert proc.returncode == 0, proc.stderr


def doctor(certctl: Certctl) -> tuple[int, list[dict[str, str]]]:
    proc = certctl.run("doctor", "--json")
    return proc.returncode, json.loads(proc.stdout)["findings"]


def listed(certctl: Certctl) -> dict[str, dict[str, Any]]:
    proc = certctl.run("list", "--json")
    assert proc.returncode == 0, proc.stderr
    return {e["name"]: e for e in json.loads(proc.stdout)["certificates"]}


# ---- 8: temp names no certificate can have --------------------------------------------


def test_certificate_named_like_a_temp_file_is_healthy(offline: Certctl, tmp_path: Path) -> None:
    for name in ("a.tmp-1", "b.tmp-1234abcd", "c.removed-x"):
        upload(offline, name, tmp_path)
    code, findings = doctor(offline)
    assert (code, findings) == (0, [])
    assert sorted(listed(offline)) == ["a.tmp-1", "b.tmp-1234abcd", "c.removed-x"]
    assert storeview.names(offline) == ["a.tmp-1", "b.tmp-1234abcd", "c.removed-x"]
    if offline.backend == "filesystem":
        assert all((offline.store / "certs" / n / "meta.toml").is_file() for n in listed(offline))


@pytest.mark.filesystem_only  # temp files of interrupted renames
def test_real_leftovers_of_interrupted_writes_are_reported(
    offline: Certctl, tmp_path: Path
) -> None:
    upload(offline, "a.tmp-1", tmp_path)
    cert_dir = offline.store / "certs" / "a.tmp-1"
    leftover = write_temp(cert_dir, "meta.toml", b"half", 0o600)  # the writer's own temp file
    # a crash while a version is being built leaves its temp directory
    bundle = tmp_path / "next.pem"
    bundle.write_bytes(make_leaf("next.example.com").bundle_pem())
    proc = offline.run(
        "upload",
        "a.tmp-1",
        "--bundle",
        str(bundle),
        "--replace",
        "--drop-names",  # next.example.com replaces a.tmp-1.example.com
        extra_env={"CERTCTL_TEST_FAULT": "version-cert.pem"},
    )
    assert proc.returncode == -9
    (version_tmp,) = [p for p in (cert_dir / "versions").iterdir() if p.name.startswith(".")]
    code, findings = doctor(offline)
    assert code == 0
    reported = {f["path"]: f for f in findings}
    assert set(reported) == {str(leftover), str(version_tmp)}
    assert all(f["severity"] == "warning" and "safe to delete" in f["problem"] for f in findings)


# ---- 9: the live symlink ----------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["/elsewhere/1", "../other/versions/1", "./versions/1", "versions/1/", "x/1"]
)
@pytest.mark.filesystem_only  # the live symlink
def test_live_pointing_anywhere_but_versions_n_is_damaged(
    offline: Certctl, tmp_path: Path, target: str
) -> None:
    upload(offline, "web", tmp_path)
    live = offline.store / "certs" / "web" / "live"
    live.unlink()
    live.symlink_to(target)
    with pytest.raises(StoreError, match=re.escape(str(live))):
        Store(offline.store).read("web")
    shown = offline.run("show", "web")
    assert shown.returncode == 1 and str(live) in shown.stderr
    assert shown.stderr.count("\n") == 1
    assert listed(offline)["web"]["state"] == "damaged"
    code, findings = doctor(offline)
    assert code == 1
    assert [(f["severity"], f["path"]) for f in findings] == [("error", str(live))]
    assert target in findings[0]["problem"]


@pytest.mark.filesystem_only  # the live symlink
def test_live_that_is_not_a_symlink_is_damaged(offline: Certctl, tmp_path: Path) -> None:
    upload(offline, "web", tmp_path)
    live = offline.store / "certs" / "web" / "live"
    live.unlink()
    live.mkdir()
    with pytest.raises(StoreError, match=re.escape(str(live))):
        Store(offline.store).read("web")
    code, findings = doctor(offline)
    assert code == 1 and [f["path"] for f in findings] == [str(live)]


# ---- 9: the list cache (index.json) -----------------------------------------------------


def index_path(certctl: Certctl) -> Path:
    return certctl.store / "index.json"


@pytest.fixture
def aged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the records were written long ago, so the cache may keep them (in-process)."""
    real = getattr(store_index, "time_ns", time.time_ns)
    monkeypatch.setattr(store_index, "time_ns", lambda: real() + 3600 * 10**9, raising=False)


def listed_in_process(certctl: Certctl) -> dict[str, dict[str, Any]]:
    result = certctl.invoke("list", "--json")
    assert result.exit_code == 0, result.stderr
    return {e["name"]: e for e in json.loads(result.stdout)["certificates"]}


@pytest.mark.filesystem_only  # index.json, the filesystem store's list cache
def test_hand_edited_index_is_not_trusted(offline: Certctl, tmp_path: Path, aged: None) -> None:
    """An expiring certificate edited to look fine in index.json still warns."""
    upload(offline, "soon", tmp_path, left=5)
    upload(offline, "later", tmp_path)
    truth = listed_in_process(offline)
    assert truth["soon"]["state"] == "expiring"
    text = index_path(offline).read_text()
    soon_after = truth["soon"]["not_after"]
    later_after = truth["later"]["not_after"]
    assert soon_after in text  # the cache holds the record
    index_path(offline).write_text(text.replace(soon_after, later_after))
    assert listed_in_process(offline) == truth
    due = offline.run("renew-due", "--json")
    assert "soon" in due.stdout, due.stdout


@pytest.mark.filesystem_only  # index.json, the filesystem store's list cache
def test_record_edited_behind_its_stamp_is_not_trusted(
    offline: Certctl, tmp_path: Path, aged: None
) -> None:
    """meta.toml rewritten in place, same inode, size and mtime: the cache sees it."""
    upload(offline, "web", tmp_path)
    before = listed_in_process(offline)["web"]
    meta = offline.store / "certs" / "web" / "meta.toml"
    info = meta.stat()
    text = meta.read_text()
    assert 'source = "upload"' in text
    edited = text.replace("web.example.com", "wex.example.com")
    assert len(edited) == len(text) and edited != text
    with open(meta, "r+") as f:  # in place: same inode
        f.write(edited)
    os.utime(meta, ns=(info.st_atime_ns, info.st_mtime_ns))
    after = meta.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        info.st_ino,
        info.st_size,
        info.st_mtime_ns,
    )
    now = listed_in_process(offline)["web"]
    assert before["domains"] == ["web.example.com"]
    assert now["domains"] == ["wex.example.com"]


@pytest.mark.filesystem_only  # index.json, the filesystem store's list cache
def test_records_written_just_now_are_not_cached(offline: Certctl, tmp_path: Path) -> None:
    """A same-size edit within one timestamp tick would keep every stamp: recent
    records are parsed again until they are older than any file system's tick."""
    upload(offline, "web", tmp_path)
    listed_in_process(offline)
    body = index_path(offline).read_bytes().partition(b"\n")[2]
    assert b"web" not in body


@pytest.mark.filesystem_only  # index.json, the filesystem store's list cache
@pytest.mark.parametrize(
    "damage",
    [
        "directory",
        "fifo",
        "symlink",
        "not json",
        "empty",
        "old format",
        "entries a list",
        "entry a list",
        "bad datetime",
        "deep nesting",
        "unknown name",
        "summary garbage",
        "summary lies about its shape",
        "quiet garbage",
    ],
)
def test_damaged_index_is_rebuilt_and_never_crashes(
    offline: Certctl, tmp_path: Path, damage: str, aged: None
) -> None:
    upload(offline, "web", tmp_path)
    truth = listed_in_process(offline)
    index = index_path(offline)
    header, _, body = index.read_bytes().partition(b"\n")
    stored = storeview.read_index(index)
    index.unlink()
    if damage == "directory":
        index.mkdir()
    elif damage == "fifo":
        os.mkfifo(index)
    elif damage == "symlink":
        (tmp_path / "elsewhere.json").write_bytes(header + b"\n" + body)
        index.symlink_to(tmp_path / "elsewhere.json")
    elif damage == "not json":
        index.write_bytes(b"{not json")
    elif damage == "empty":
        index.write_bytes(b"")
    elif damage == "old format":
        index.write_text(json.dumps({"format": 1, "certificates": {"web": {"x": 1}}}))
    else:
        header_fields, heads, summaries, records = stored
        raw: dict[str, str] = {}
        if damage == "entries a list":
            index.write_bytes(_with_header(header, json.dumps([heads]).encode() + b"\n"))
        else:
            if damage == "entry a list":
                heads["web"] = [heads["web"]]
            elif damage == "bad datetime":
                records["web"]["created"] = {"$dt": 5}
            elif damage == "unknown name":
                heads["ghost"] = heads["web"]
                summaries["ghost"], records["ghost"] = summaries["web"], records["web"]
            elif damage == "deep nesting":  # deeper than json's recursion limit
                deep = "[" * 100_000 + "]" * 100_000
                raw["web"] = json.dumps(records["web"]).replace("{", '{"x": ' + deep + ", ", 1)
            elif damage == "summary garbage":
                summaries["web"] = {"domains": "not a list", "states": [[None, 1, 2]]}
            elif damage == "summary lies about its shape":
                summaries["web"]["states"] = []
            elif damage == "quiet garbage":
                heads["web"][1] = [["soon", "later"]]
            storeview.write_index(index, header_fields, heads, summaries, records, raw)
    # a fresh process: the damaged cache must neither crash nor mislead it
    proc = subprocess.run(
        [*CERTCTL, "list", "--json"],
        env={**os.environ, **offline.env()},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert {e["name"]: e for e in json.loads(proc.stdout)["certificates"]} == truth
    assert listed_in_process(offline) == truth
    if damage != "directory":
        assert index.is_file() and not index.is_symlink()
        heads = json.loads(index.read_bytes().split(b"\n")[1])
        assert set(heads) == {"web"}  # a line damaged behind a good checksum may stay: unused


def _with_header(header: bytes, body: bytes) -> bytes:
    """A damaged body behind a header whose checksum matches it (as a bug might write)."""
    fields = json.loads(header)
    fields["crc32"] = store_index.checksum(body)
    return json.dumps(fields).encode() + b"\n" + body


@pytest.mark.filesystem_only  # index.json, the filesystem store's list cache
def test_doctor_reports_an_index_that_is_not_a_file(offline: Certctl, tmp_path: Path) -> None:
    upload(offline, "web", tmp_path)
    index = index_path(offline)
    index.unlink(missing_ok=True)
    index.mkdir()
    code, findings = doctor(offline)
    assert code == 0
    assert [(f["severity"], f["path"]) for f in findings] == [("warning", str(index))]


# ---- doctor on the PostgreSQL store: damage in the database ------------------------------


@pytest.fixture
def database(pg_url: str, store: Path, tmp_path: Path) -> Certctl:
    """certctl on a fresh PostgreSQL database with its store key (no CA)."""
    return Certctl(store, None, location=pg_url, key_file=store_key(tmp_path))


def doctor_json(certctl: Certctl, *args: str, **extra_env: str) -> tuple[int, dict[str, Any]]:
    proc = certctl.run(*args, "doctor", "--json", extra_env=extra_env)
    assert proc.stderr == "", proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_doctor_on_a_healthy_database_finds_nothing(database: Certctl, tmp_path: Path) -> None:
    upload(database, "web", tmp_path)
    code, report = doctor_json(database)
    assert (code, report["healthy"], report["findings"]) == (0, True, [])
    assert report["store"] == database.location
    text = database.run("doctor")
    assert (text.returncode, text.stdout) == (0, f"store {database.location}: healthy\n")


def test_doctor_reports_a_damaged_record_row(
    database: Certctl, postgres: PostgresServer, tmp_path: Path
) -> None:
    upload(database, "web", tmp_path)
    upload(database, "other", tmp_path)
    postgres.sql(
        """UPDATE certctl_certificates SET record = '{"name": "web", "domains": 5}'"""
        " WHERE name = 'web'",
        dbname=storeview.database(database),
    )
    code, report = doctor_json(database)
    assert (code, report["healthy"]) == (1, False)
    (finding,) = report["findings"]
    assert (finding["severity"], finding["name"], finding["path"]) == (
        "error",
        "web",
        "certificates/web",
    )
    assert "metadata of 'web' is damaged" in finding["problem"]
    assert "domains: expected an array, got an integer" in finding["problem"]
    text = database.run("doctor")
    assert text.returncode == 1
    assert text.stdout.startswith("error: web: certificates/web: metadata of 'web' is damaged")


def test_doctor_reports_a_live_version_whose_key_does_not_match(
    database: Certctl, postgres: PostgresServer, tmp_path: Path
) -> None:
    upload(database, "web", tmp_path)
    stranger = make_leaf("stranger.example.com", key=private_key("ec256", 99))
    with storeview.opened(database) as opened, opened.lock("web"):
        cert = database.live("web")
        version = opened.add_version(
            "web", cert=cert["cert.pem"], chain=cert["chain.pem"], key=stranger.key_pem()
        )
    assert version == 2
    assert doctor_json(database)[0] == 0  # not live: nobody serves it
    postgres.sql(  # live pointed at it by hand
        "UPDATE certctl_live SET version = 2 WHERE name = 'web'",
        dbname=storeview.database(database),
    )
    code, report = doctor_json(database)
    assert (code, report["healthy"]) == (1, False)
    assert report["findings"] == [
        {
            "severity": "error",
            "name": "web",
            "path": "certificates/web version 2",
            "problem": "the live key does not match the live certificate",
        }
    ]


def test_doctor_reports_a_pending_order_without_its_key(
    database: Certctl, postgres: PostgresServer
) -> None:
    order = OrderState(
        url="https://127.0.0.1:9/order/1",
        status="pending",
        finalize_url="https://127.0.0.1:9/finalize/1",
        expires=datetime.now(UTC).replace(microsecond=0) + timedelta(days=7),
        key_id="k1",
    )
    record = CertRecord(
        name="pend", domains=["pend.example.com"], server="https://127.0.0.1:9/dir", order=order
    )
    with storeview.opened(database) as opened:
        opened.ensure()
        with opened.lock("pend"):
            opened.write(record)
            opened.write_pending_key("pend", make_leaf("pend.example.com").key_pem(), "k1")
    assert doctor_json(database)[0] == 0
    postgres.sql(
        "DELETE FROM certctl_pending_keys WHERE name = 'pend'",
        dbname=storeview.database(database),
    )
    code, report = doctor_json(database)
    assert code == 1
    (finding,) = report["findings"]
    assert (finding["severity"], finding["name"], finding["path"]) == (
        "error",
        "pend",
        "certificates/pend",
    )
    assert finding["problem"].startswith("the pending order's key is missing: place the order")
    assert (
        "certctl --server https://127.0.0.1:9/dir order -d pend.example.com" in (finding["problem"])
    )


def test_doctor_warns_of_an_interrupted_account_rollover(
    database: Certctl, postgres: PostgresServer
) -> None:
    server = "https://acme.example/dir"
    with storeview.opened(database) as opened:
        opened.ensure()
        opened.write_account_key(server, make_leaf("acct.example.com").key_pem())
        opened.write_account(AccountRecord(server=server, uri="https://acme.example/acct/1"))
    assert doctor_json(database) == (
        0,
        {"store": database.location, "healthy": True, "findings": []},
    )
    postgres.sql(  # what a crash between the CA's answer and settling it leaves
        "UPDATE certctl_accounts SET old_key = key WHERE server = %s",
        (server,),
        dbname=storeview.database(database),
    )
    code, report = doctor_json(database)
    assert (code, report["healthy"]) == (0, True)  # a warning: `account show` settles it
    assert report["findings"] == [
        {
            "severity": "warning",
            "name": "",
            "path": f"accounts/{server}",
            "problem": "an account key rollover was interrupted:"
            " run 'certctl account show' to settle it",
        }
    ]


def test_doctor_without_the_store_key_warns_that_keys_were_not_checked(
    database: Certctl, tmp_path: Path
) -> None:
    upload(database, "web", tmp_path)
    without = Certctl(database.store, None, location=database.location)
    code, report = doctor_json(without)
    assert (code, report["healthy"]) == (0, True)
    assert report["findings"] == [
        {
            "severity": "warning",
            "name": "",
            "path": database.location,
            "problem": "keys not checked: give --store-key-file to check that every key opens",
        }
    ]
    with_option = doctor_json(without, "--store-key-file", str(database.key_file))
    assert with_option == (0, {"store": database.location, "healthy": True, "findings": []})


def test_doctor_with_the_wrong_store_key_is_one_line_exit_2(
    database: Certctl, tmp_path: Path
) -> None:
    upload(database, "web", tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    wrong = store_key(other)
    proc = database.run("doctor", "--json", extra_env={"CERTCTL_STORE_KEY_FILE": str(wrong)})
    assert (proc.returncode, proc.stdout) == (2, "")
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"error: store {database.location} is sealed with store key ")
    assert f"but {wrong} holds key " in line and line.endswith("(nothing was written)")
