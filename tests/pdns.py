"""Run a throwaway PowerDNS authoritative server (sqlite3 backend, HTTP API) on loopback."""

from __future__ import annotations

import atexit
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import pytest

from bind import find_tool
from pebble import _free_tcp_udp_port, _tail, free_port

SCHEMA_PATHS = (
    "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql",
    "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
)
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


def require_pdns() -> tuple[str, Path]:
    """(pdns_server, the sqlite3 schema), or skip (fail under CI=true) when missing."""
    server = find_tool("pdns_server")
    schema = next((Path(p) for p in SCHEMA_PATHS if Path(p).is_file()), None)
    if server and schema:
        return server, schema
    message = "PowerDNS not installed (Debian: pdns-server, pdns-backend-sqlite3)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must run scripts/setup.sh first", pytrace=False)
    pytest.skip(f"{message}; run `sudo scripts/setup.sh` to enable the PowerDNS tests")


class PowerDns:
    """`pdns_server` on 127.0.0.1 (DNS and API on free ports), its config and db in tmp_dir."""

    def __init__(self, tmp_dir: Path, zones: list[str]) -> None:
        self.tmp_dir = Path(tmp_dir)
        self.zones = zones
        self.api_key = "pdns-" + secrets.token_hex(16)
        self.port = _free_tcp_udp_port()
        self.api_port = free_port()
        self.log_path = self.tmp_dir / "pdns.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """The DNS side: "127.0.0.1:PORT"."""
        return f"127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _config(self) -> str:
        d = self.tmp_dir
        return "\n".join(
            [
                "launch=gsqlite3",
                f"gsqlite3-database={d}/pdns.sqlite3",
                "local-address=127.0.0.1",
                f"local-port={self.port}",
                f"socket-dir={d}",
                "daemon=no",
                "guardian=no",
                "disable-syslog=yes",
                "loglevel=4",
                "api=yes",
                f"api-key={self.api_key}",
                "webserver=yes",
                "webserver-address=127.0.0.1",
                f"webserver-port={self.api_port}",
                "webserver-allow-from=127.0.0.0/8",
                "cache-ttl=0",
                "query-cache-ttl=0",
                "negquery-cache-ttl=0",
                "zone-cache-refresh-interval=0",
                "",
            ]
        )

    def start(self) -> PowerDns:
        """Start pdns_server, wait for its API, create the zones."""
        server, schema = require_pdns()
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        db = self.tmp_dir / "pdns.sqlite3"
        if not db.exists():
            with sqlite3.connect(db) as conn:
                conn.executescript(schema.read_text())
        (self.tmp_dir / "pdns.conf").write_text(self._config())
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [server, f"--config-dir={self.tmp_dir}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"pdns exited {self._proc.returncode}:\n{_tail(self.log_path)}")
            try:
                self.api("GET", "")
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pdns API not up:\n{_tail(self.log_path)}") from None
                time.sleep(0.1)
        existing = {z["name"] for z in self.api("GET", "/zones")}
        for zone in self.zones:
            if f"{zone}." not in existing:
                self._create_zone(zone)
        return self

    def _create_zone(self, zone: str) -> None:
        self.api(
            "POST",
            "/zones",
            {
                "name": f"{zone}.",
                "kind": "Native",
                "nameservers": [f"ns1.{zone}."],
                "rrsets": [
                    self._rrset(f"ns1.{zone}.", "A", ["127.0.0.2"]),
                    self._rrset(f"{zone}.", "A", ["127.0.0.1"]),
                    self._rrset(f"*.{zone}.", "A", ["127.0.0.1"]),
                ],
            },
        )

    @staticmethod
    def _rrset(name: str, rdtype: str, contents: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "type": rdtype,
            "ttl": 60,
            "changetype": "REPLACE",
            "records": [{"content": c, "disabled": False} for c in contents],
        }

    def stop(self) -> None:
        """SIGTERM (then SIGKILL) the server by its PID and reap it."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)

    def __enter__(self) -> PowerDns:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the API and DNS, for set-up and checks ------------------------------------------------

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """One call to /api/v1/servers/localhost{path} with the key; the JSON answer."""
        request = urllib.request.Request(
            f"{self.api_url}/api/v1/servers/localhost{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read()
        return json.loads(text) if text else None

    def set_rrset(self, zone: str, name: str, rdtype: str, contents: list[str]) -> None:
        """Replace (or with no contents delete) one RRset (test set-up)."""
        rrset = self._rrset(f"{name}.", rdtype, contents)
        if not contents:
            rrset = {"name": f"{name}.", "type": rdtype, "changetype": "DELETE"}
        self.api("PATCH", f"/zones/{zone}.", {"rrsets": [rrset]})

    def api_txt(self, name: str) -> list[str]:
        """The TXT values at `name` as the API holds them (unquoted)."""
        zone = next(z for z in self.zones if name == z or name.endswith(f".{z}"))
        data = self.api("GET", f"/zones/{zone}.")
        return sorted(
            record["content"].strip('"')
            for rrset in data["rrsets"]
            if rrset["name"] == f"{name}." and rrset["type"] == "TXT"
            for record in rrset["records"]
        )

    def txt(self, name: str) -> list[str]:
        """The TXT values the server answers over DNS at `name`."""
        request = dns.message.make_query(name, "TXT")
        request.flags &= ~dns.flags.RD
        response, _ = dns.query.udp_with_fallback(request, "127.0.0.1", timeout=3, port=self.port)
        target = dns.name.from_text(name)
        return sorted(
            b"".join(r.strings).decode()
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.TXT and rrset.name == target
            for r in rrset
        )

    def leftover_challenges(self) -> list[str]:
        """Every `_acme-challenge` TXT still in any zone, as the API lists it."""
        found = []
        for zone in self.zones:
            data = self.api("GET", f"/zones/{zone}.")
            found += [
                rrset["name"]
                for rrset in data["rrsets"]
                if rrset["type"] == "TXT"
                and rrset["name"].startswith("_acme-challenge.")
                and any(r["content"] != '"keep-me"' for r in rrset["records"])
            ]
        return found
