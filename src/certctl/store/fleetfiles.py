"""Fleet state in the directory store: published HTTP-01 responses and who deployed what.

    <root>/challenges/<token>     a response `serve-challenges` answers with
    <root>/deployments.toml       name → host → version and time of its last `deploy`

Both are written atomically; deployments.toml under a lock of its own (never a
certificate's, which a renewal holds for minutes), so deploys of several hosts
sharing the directory (NFS, a container volume) don't lose each other's entries.
One file, so `list` reads every certificate's deployments with one read.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from certctl.errors import BadInput, StoreError
from certctl.store.contract import Deployment
from certctl.store.files import CERT_MODE, META_MODE, atomic_write, to_toml, write_failed
from certctl.store.pending import StorePendingKeys

TOKEN = re.compile(r"[A-Za-z0-9_-]{16,256}")  # RFC 8555 §8.3: base64url, 128 bits or more
DEPLOYMENTS = "deployments.toml"
HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


def check_token(token: str) -> str:
    """A challenge token as RFC 8555 allows it, or BadInput (it becomes a file name)."""
    if not TOKEN.fullmatch(token):
        raise BadInput("malformed challenge token: expected 16-256 base64url characters")
    return token


def check_host(host: str) -> str:
    """A host id (--host-id / CERTCTL_HOST_ID / the host name), or BadInput."""
    if not HOST.fullmatch(host):
        raise BadInput(
            f"host id {host!r} is not usable: letters, digits, '.', '_' and '-', starting"
            " with a letter or digit (set --host-id)"
        )
    return host


class StoreFleet(StorePendingKeys):
    """Challenge responses and deployments, as files."""

    def publish_challenge(self, token: str, content: bytes) -> None:
        """Keep an HTTP-01 response where `serve-challenges` finds it (0644: it is public)."""
        path = self.root / "challenges" / check_token(token)
        self.ensure()
        self._mkdir(path.parent)
        try:
            atomic_write(path, content, CERT_MODE)
        except OSError as e:
            raise write_failed("publish the challenge response", e) from e

    def challenge_response(self, token: str) -> bytes | None:
        """The published response for `token`, or None (also for a malformed token)."""
        if not TOKEN.fullmatch(token):
            return None
        try:
            return (self.root / "challenges" / token).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def withdraw_challenge(self, token: str) -> None:
        """Remove a published response."""
        path = self.root / "challenges" / check_token(token)
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            raise write_failed("remove the challenge response", e) from e

    def record_deployment(self, name: str, host: str, version: int, at: datetime) -> None:
        """Note that `host` now serves `version` of `name`."""
        check_host(host)
        self.ensure()
        with self.lock("deployments", what="store"):
            entries = self._read_deployments()
            entries = {
                n: hosts
                for n, hosts in entries.items()
                if n == name or (self.root / "certs" / n / "meta.toml").is_file()
            }
            entries.setdefault(name, {})[host] = {"version": version, "at": at}
            try:
                atomic_write(self.root / DEPLOYMENTS, to_toml(entries).encode(), META_MODE)
            except OSError as e:
                raise write_failed(f"record the deployment of {name!r}", e) from e

    def deployments(self, name: str) -> list[Deployment]:
        """Which hosts deployed which version of `name`, by host name."""
        return self.all_deployments().get(name, [])

    def all_deployments(self) -> dict[str, list[Deployment]]:
        """Every certificate's deployments (one file read)."""
        return {
            name: [Deployment(h, e["version"], e["at"]) for h, e in sorted(hosts.items())]
            for name, hosts in self._read_deployments().items()
        }

    def _read_deployments(self) -> dict[str, dict[str, dict[str, Any]]]:
        import tomllib

        path = self.root / DEPLOYMENTS
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise StoreError(f"{path} is damaged ({type(e).__name__}): remove it") from e
        valid: dict[str, dict[str, dict[str, Any]]] = {}
        for name, hosts in data.items():
            if not isinstance(hosts, dict):
                continue
            for host, entry in hosts.items():
                if (
                    isinstance(entry, dict)
                    and isinstance(entry.get("version"), int)
                    and isinstance(entry.get("at"), datetime)
                ):
                    valid.setdefault(name, {})[host] = entry
        return valid
