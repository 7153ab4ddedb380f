"""Reading every certificate of the PostgreSQL store at once: all records, or glances
with their summaries (schema 3), so `list` and `renew-due` need not parse every record.

certctl_summaries keeps, per certificate, the summary (policy/glance.py) made from its
record, with the version of the record's row it was made from and the summarizer's
key. A summary is used only when both still match, so a record written by any host
since (or by an older certctl) is summarized again, never shown from a stale summary;
and a summary is a cache: failing to keep one (a read-only replica) costs the next run
time, nothing else.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from certctl.errors import CertctlError, StoreError
from certctl.models import CertRecord
from certctl.store.contract import Glance, Summarizer, Summary, parse_summary
from certctl.store.postgres.base import from_json, to_json

log = logging.getLogger(__name__)

# Which version of a certificate's row a summary was made from: the transaction that
# wrote it (xmin) and when (updated_at). Any write of the record, by certctl on any host
# or by hand, makes a new row version; comparing these costs nothing, where hashing
# every record's JSON cost more than reading it.
# (as epoch seconds: the same text whatever a session's TimeZone and DateStyle)
ROW_VERSION = "(c.xmin::text || ':' || extract(epoch FROM c.updated_at)::text)"


class PgStore(Protocol):
    """What these reads need of the PostgreSQL store (store.py's PgStore)."""

    def exists(self) -> bool: ...
    def run(self, doing: str, sql: str, params: Any = None) -> Any: ...
    def conn(self) -> Any: ...
    def read(self, name: str) -> CertRecord: ...
    def _parse(self, name: str, text: str) -> CertRecord: ...


def records(store: PgStore) -> list[tuple[str, CertRecord | CertctlError]]:
    """Every certificate's record (or the error reading it), in one query."""
    if not store.exists():
        return []
    rows = store.run(
        "list certificates",
        "SELECT name, record::text FROM certctl_certificates ORDER BY name",
    ).fetchall()
    result: list[tuple[str, CertRecord | CertctlError]] = []
    for name, text in rows:
        try:
            result.append((name, store._parse(name, text)))
        except StoreError as e:
            result.append((name, e))
    return result


def glances(store: PgStore, summarizer: Summarizer | None) -> list[Glance]:
    """Every certificate's glance, in one query: the summary kept in certctl_summaries
    when it was made under the same key from this very row version of its record, else made now
    and kept for the next run; records are read only when asked for."""
    if summarizer is None:
        return [Glance(name, record=record) for name, record in records(store)]
    if not store.exists():
        return []
    rows = store.run(
        "list certificates",
        "SELECT c.name, s.quiet::text,"  # noqa: S608 - ROW_VERSION is a constant
        f" CASE WHEN s.name IS NULL THEN c.record::text END, {ROW_VERSION}"
        " FROM certctl_certificates c LEFT JOIN certctl_summaries s"
        f" ON s.name = c.name AND s.key = %s AND s.record_version = {ROW_VERSION}"
        " ORDER BY c.name",
        (summarizer.key,),
    ).fetchall()
    source = _KeptSummaries(store, summarizer.key)
    result: list[Glance] = []
    made = []
    for name, quiet, text, digest in rows:
        if text is None:  # kept, and made from this record
            at = len(source.names)
            source.names.append(name)
            result.append(Glance(name, quiet=from_json(quiet), source=source, at=at))
            continue
        try:
            record = store._parse(name, text)
        except StoreError as e:
            result.append(Glance(name, record=e))
            continue
        made_summary = summarizer(record)
        quiet_spans = made_summary["quiet"]
        result.append(Glance(name, quiet=quiet_spans, summary=made_summary, record=record))
        made.append((name, summarizer.key, digest, to_json(quiet_spans), to_json(made_summary)))
    if made:
        _keep_summaries(store, made)
    return result


def _keep_summaries(store: PgStore, rows: list[tuple[str, str, str, str, str]]) -> None:
    """Store summaries for the next run; a cache: a read-only store just goes without."""
    try:
        conn = store.conn()
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO certctl_summaries (name, key, record_version, quiet, summary)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
                " key = EXCLUDED.key, record_version = EXCLUDED.record_version,"
                " quiet = EXCLUDED.quiet, summary = EXCLUDED.summary",
                rows,
            )
    except Exception as e:
        log.debug("summaries not kept: %s", e)


class _KeptSummaries:
    """The summaries one glances() query found kept, fetched in one more query when the
    first is asked for (`list` wants them all; `renew-due` only the quiet spans)."""

    def __init__(self, store: PgStore, key: str) -> None:
        self.store = store
        self.key = key
        self.names: list[str] = []
        self._texts: dict[str, str] | None = None

    def summary(self, at: int) -> Summary | None:
        if self._texts is None:
            rows = self.store.run(
                "read the summaries",
                "SELECT s.name, s.summary::text FROM certctl_summaries s"  # noqa: S608
                " JOIN certctl_certificates c ON c.name = s.name"
                f" WHERE s.key = %s AND s.record_version = {ROW_VERSION}",
                (self.key,),
            ).fetchall()
            self._texts = dict(rows)
        text = self._texts.get(self.names[at])
        if text is None:  # the record changed since the first query: made again by the caller
            return None
        return parse_summary(text)

    def record(self, name: str, at: int) -> CertRecord:
        return self.store.read(name)
