"""The PostgreSQL store's schema: created on first use, versioned, migrated forward once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from certctl.errors import StoreError
from certctl.store.postgres import PgStore
from certctl.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version

from conftest import store_key


def test_first_use_creates_the_current_schema(pg_url: str, tmp_path: Path) -> None:
    store = PgStore(pg_url, key_file=store_key(tmp_path))
    try:
        assert not store.exists()
        assert store.names() == []  # reading an uncreated store creates nothing
        assert not store.exists()
        store.ensure()
        assert schema_version(store.conn()) == SCHEMA_VERSION
    finally:
        store.close()


def test_a_forward_migration_runs_once_and_keeps_the_data(pg_url: str, tmp_path: Path) -> None:
    from certctl.models import CertRecord

    store = PgStore(pg_url, key_file=store_key(tmp_path))
    try:
        store.ensure()
        store.write(CertRecord(name="web", domains=["web.example.com"]))
        step = (
            SCHEMA_VERSION + 1,
            ("ALTER TABLE certctl_certificates ADD COLUMN deployed_by text",),
        )
        assert migrate(store.conn(), store.location, [*MIGRATIONS, step]) == SCHEMA_VERSION + 1
        assert migrate(store.conn(), store.location, [*MIGRATIONS, step]) == SCHEMA_VERSION + 1
        columns = store.run(
            "columns",
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'certctl_certificates'",
        ).fetchall()
        assert ("deployed_by",) in columns
        assert store.read("web").domains == ["web.example.com"]
    finally:
        store.close()


def test_a_failed_migration_changes_nothing(pg_url: str, tmp_path: Path) -> None:
    store = PgStore(pg_url, key_file=store_key(tmp_path))
    try:
        store.ensure()
        broken = (
            SCHEMA_VERSION + 1,
            ("CREATE TABLE certctl_extra (x int)", "THIS IS NOT SQL"),
        )
        with pytest.raises(Exception, match="syntax"):
            migrate(store.conn(), store.location, [*MIGRATIONS, broken])
        assert schema_version(store.conn()) == SCHEMA_VERSION
        found = store.run("t", "SELECT to_regclass('certctl_extra')").fetchone()
        assert found == (None,)
    finally:
        store.close()


def test_a_newer_schema_is_refused_before_anything_is_written(pg_url: str, tmp_path: Path) -> None:
    from certctl.models import CertRecord

    store = PgStore(pg_url, key_file=store_key(tmp_path))
    store.ensure()
    store.run("newer", "UPDATE certctl_meta SET value = '99' WHERE key = 'schema_version'")
    store.close()
    (tmp_path / "other").mkdir()
    again = PgStore(pg_url, key_file=store_key(tmp_path / "other"))
    try:
        with pytest.raises(StoreError, match=r"schema version 99.*upgrade certctl"):
            again.check()
        with pytest.raises(StoreError, match="schema version 99"):
            again.ensure()
        with pytest.raises(StoreError, match="schema version 99"):
            again.write(CertRecord(name="web", domains=["web.example.com"]))
        assert again.run("n", "SELECT count(*) FROM certctl_certificates").fetchone() == (0,)
    finally:
        again.close()


def test_hosts_creating_the_store_at_once_make_one_schema(pg_url: str, tmp_path: Path) -> None:
    script = (
        "import sys; from certctl.store.postgres import PgStore;"
        " s = PgStore(sys.argv[1]); s.ensure(); s.close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, pg_url], stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    store = PgStore(pg_url)
    try:
        assert schema_version(store.conn()) == SCHEMA_VERSION
    finally:
        store.close()
