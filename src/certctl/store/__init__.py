"""The store: owns every byte under the store directory.

Layout (README "Store layout")::

    <root>/certctl-store.toml          format marker
    <root>/accounts/<ca-id>/account.toml, account.key
    <root>/certs/<name>/meta.toml      the CertRecord
    <root>/certs/<name>/pending-<id>.key  key of the order in progress (the order names <id>)
    <root>/certs/<name>/versions/<n>/{cert,chain,fullchain,privkey}.pem
    <root>/certs/<name>/live -> versions/<n>   (one symlink: switched atomically)
    <root>/locks/<name>.lock           per-certificate flock

Guarantees: every file is written to a temp file in its directory, fsynced and
renamed; a version directory is built under a temp name and renamed whole; the
live symlink is replaced with one rename. So a crash leaves each certificate
either as it was or fully updated. Directories are 0700 and keys 0600 whatever
the umask.
"""

from certctl.store.contract import CertStore, LivePaths
from certctl.store.files import (
    CERT_MODE,
    DIR_MODE,
    FORMAT,
    KEY_MODE,
    LIVE_FILES,
    META_MODE,
    atomic_write,
    fault_point,
)
from certctl.store.filesystem import Store

__all__ = [
    "CERT_MODE",
    "DIR_MODE",
    "FORMAT",
    "KEY_MODE",
    "LIVE_FILES",
    "META_MODE",
    "CertStore",
    "LivePaths",
    "Store",
    "atomic_write",
    "fault_point",
]
