"""Fleet state in the PostgreSQL store: HTTP-01 responses every host serves, deployments."""

from __future__ import annotations

from datetime import datetime

from certctl.store.contract import Deployment
from certctl.store.fleetfiles import TOKEN, check_host, check_token
from certctl.store.postgres.accounts import PgAccounts


class PgFleet(PgAccounts):
    """Challenge responses and deployments, as rows."""

    def publish_challenge(self, token: str, content: bytes) -> None:
        """Keep an HTTP-01 response where `serve-challenges` on every host finds it."""
        check_token(token)
        self._ensure_for_write()
        self.run(
            "publish the challenge response",
            "INSERT INTO certctl_challenges (token, content) VALUES (%s, %s)"
            " ON CONFLICT (token) DO UPDATE SET content = EXCLUDED.content",
            (token, content),
        )

    def challenge_response(self, token: str) -> bytes | None:
        """The published response for `token`, or None (also for a malformed token)."""
        if not TOKEN.fullmatch(token) or not self.exists():
            return None
        row = self.run(
            "read the challenge response",
            "SELECT content FROM certctl_challenges WHERE token = %s",
            (token,),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def withdraw_challenge(self, token: str) -> None:
        """Remove a published response."""
        check_token(token)
        if self.exists():
            self.run(
                "remove the challenge response",
                "DELETE FROM certctl_challenges WHERE token = %s",
                (token,),
            )

    def record_deployment(self, name: str, host: str, version: int, at: datetime) -> None:
        """Note that `host` now serves `version` of `name` (no lock: one row per host)."""
        check_host(host)
        self._ensure_for_write()
        self.run(
            f"record the deployment of {name!r}",
            "INSERT INTO certctl_deployments (name, host, version, deployed_at)"
            " SELECT %s, %s, %s, %s WHERE EXISTS"
            " (SELECT 1 FROM certctl_certificates WHERE name = %s)"
            " ON CONFLICT (name, host) DO UPDATE"
            " SET version = EXCLUDED.version, deployed_at = EXCLUDED.deployed_at",
            (name, host, version, at, name),
        )

    def deployments(self, name: str) -> list[Deployment]:
        """Which hosts deployed which version of `name`, by host name."""
        if not self.exists():
            return []
        rows = self.run(
            "read deployments",
            "SELECT host, version, deployed_at FROM certctl_deployments WHERE name = %s"
            " ORDER BY host",
            (name,),
        ).fetchall()
        return [Deployment(host, int(version), at) for host, version, at in rows]

    def all_deployments(self) -> dict[str, list[Deployment]]:
        """Every certificate's deployments (one query)."""
        if not self.exists():
            return {}
        rows = self.run(
            "read deployments",
            "SELECT name, host, version, deployed_at FROM certctl_deployments ORDER BY name, host",
        ).fetchall()
        found: dict[str, list[Deployment]] = {}
        for name, host, version, at in rows:
            found.setdefault(name, []).append(Deployment(host, int(version), at))
        return found
