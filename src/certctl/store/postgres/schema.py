"""The PostgreSQL store's tables, created on first use and versioned.

`certctl_meta.schema_version` says which of MIGRATIONS have run. Each migration
runs in one transaction with the schema_version update, under an advisory lock,
so two hosts starting at once neither race nor half-migrate. A store whose
schema is newer than this certctl knows is refused before anything is written.

    certctl_meta          key → value (schema_version, store_key_id)
    certctl_certificates  name → record (JSON: the CertRecord)
    certctl_versions      (name, version) → cert, chain, sealed privkey, info, previous
    certctl_live          name → version (the live switch: one row, one UPDATE)
    certctl_pending_keys  (name, key_id) → sealed key of an order in progress
    certctl_accounts      server → record, sealed key, sealed old key (rollover)
    certctl_locks         name → fencing token, holder, lease expiry
    certctl_challenges    token → HTTP-01 response (schema 2: fleets)
    certctl_deployments   (name, host) → version deployed there, when (schema 2)
    certctl_summaries     name → summary of the record row version it names, under a key
                          (schema 3: a cache for list and renew-due, policy/glance.py)
"""

from __future__ import annotations

from typing import Any

from certctl.errors import StoreError

ADVISORY_LOCK = 0x6365727463746C  # "certctl": serialises schema creation and migration

MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (
        1,
        (
            """CREATE TABLE certctl_meta (
                key text PRIMARY KEY,
                value text NOT NULL)""",
            """CREATE TABLE certctl_certificates (
                name text PRIMARY KEY,
                record jsonb NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now())""",
            """CREATE TABLE certctl_versions (
                name text NOT NULL,
                version integer NOT NULL CHECK (version > 0),
                cert bytea NOT NULL,
                chain bytea NOT NULL,
                privkey bytea NOT NULL,
                info jsonb,
                previous jsonb,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (name, version))""",
            """CREATE TABLE certctl_live (
                name text PRIMARY KEY,
                version integer NOT NULL,
                switched_at timestamptz NOT NULL DEFAULT now(),
                FOREIGN KEY (name, version) REFERENCES certctl_versions (name, version))""",
            """CREATE TABLE certctl_pending_keys (
                name text NOT NULL,
                key_id text NOT NULL,
                privkey bytea NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (name, key_id))""",
            """CREATE TABLE certctl_accounts (
                server text PRIMARY KEY,
                record jsonb,
                key bytea,
                old_key bytea)""",
            """CREATE TABLE certctl_locks (
                name text PRIMARY KEY,
                token bigint NOT NULL,
                holder text NOT NULL,
                backend_pid integer NOT NULL,
                expires_at timestamptz NOT NULL)""",
            "CREATE SEQUENCE certctl_fencing_tokens",
        ),
    ),
    (
        2,  # fleets: HTTP-01 responses every host serves, and who deployed which version
        (
            """CREATE TABLE certctl_challenges (
                token text PRIMARY KEY,
                content bytea NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now())""",
            """CREATE TABLE certctl_deployments (
                name text NOT NULL,
                host text NOT NULL,
                version integer NOT NULL,
                deployed_at timestamptz NOT NULL,
                PRIMARY KEY (name, host))""",
        ),
    ),
    (
        3,  # summaries: list and renew-due without parsing every record (a cache)
        (
            """CREATE TABLE certctl_summaries (
                name text PRIMARY KEY,
                key text NOT NULL,
                record_version text NOT NULL,
                quiet jsonb,
                summary jsonb NOT NULL)""",
        ),
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def schema_version(conn: Any) -> int | None:
    """The store's schema version, or None when the store has not been created."""
    row = conn.execute("SELECT to_regclass('certctl_meta') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute("SELECT value FROM certctl_meta WHERE key = 'schema_version'").fetchone()
    if found is None:
        return 0
    try:
        return int(found[0])
    except ValueError:
        raise StoreError(f"certctl_meta.schema_version is {found[0]!r}: damaged") from None


def refuse_newer(version: int | None, location: str, known: int = SCHEMA_VERSION) -> None:
    """StoreError for a schema written by a newer certctl: nothing is written into it."""
    if version is not None and version > known:
        raise StoreError(
            f"store {location} has schema version {version}; this certctl understands up to"
            f" {known}: upgrade certctl on this host (nothing was changed)"
        )


def migrate(
    conn: Any,
    location: str,
    migrations: list[tuple[int, tuple[str, ...]]] | None = None,
) -> int:
    """Create the tables or bring them forward, each step in one transaction; the version."""
    steps = MIGRATIONS if migrations is None else migrations
    known = steps[-1][0]
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK,))
        current = schema_version(conn)
        refuse_newer(current, location, known)
        for number, statements in steps:
            if current is not None and number <= current:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO certctl_meta (key, value) VALUES ('schema_version', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(number),),
            )
            current = number
    return known if current is None else current
