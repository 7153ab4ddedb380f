"""What each version keeps of its record, and settling a record on the live version.

A version's info.toml holds the certificate's facts (dates, serial, names...) and its
origin: the source, key type and validation of the record it was stored under. A
version stored by `upload --replace` also keeps the record it replaced (previous.toml).
The live switch is the commit point, so after a crash the record is made to describe
the live version from these (see Store._reconcile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from certctl.models import SOURCE_UPLOAD, CertRecord, Current

ORIGIN = ("source", "key_type", "validation")


def origin_of(record: CertRecord | None) -> dict[str, Any]:
    """What a version keeps of its record: source, key type and validation."""
    if record is None:
        return {}
    data = record.to_dict()
    return {k: data[k] for k in ORIGIN if k in data}


def read_toml(path: Path) -> dict[str, Any] | None:
    """A TOML file's table, or None when it is missing or unreadable."""
    import tomllib

    try:
        return tomllib.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def settle_on(record: CertRecord, live: int, info: dict[str, Any]) -> bool:
    """Make `record` describe version `live` from its info.toml; False when that is damaged.

    Without an origin (versions stored before info.toml carried one) the record's
    source and validation stay as they are. An uploaded version ends any order.
    """
    try:
        current = Current.from_dict({**info, "version": live})
        # only the origin fields are used; the name stands in for the domains a record needs
        origin = CertRecord.from_dict(
            {
                "name": record.name,
                "domains": [record.name],
                **{k: info[k] for k in ORIGIN if k in info},
            }
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return False
    record.current = current
    if current.names and set(current.names) != set(record.domains):
        record.domains = list(current.names)
    if "source" in info:
        record.source, record.key_type = origin.source, origin.key_type
        record.validation = origin.validation
        if record.source == SOURCE_UPLOAD:
            record.order = None
    return True


def previous_record(ahead: Path, name: str, live: int) -> CertRecord | None:
    """The record that version `ahead` replaced, when it describes version `live`."""
    data = read_toml(ahead / "previous.toml")
    try:
        previous = CertRecord.from_dict(data) if data is not None else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if previous is None or previous.name != name or previous.current is None:
        return None
    return previous if previous.current.version == live else None
