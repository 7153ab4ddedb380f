"""A real nginx (Debian's `nginx`) on a free loopback port, from a temp-dir config.

Started in the foreground (`daemon off`) as our own child, so its PID is the
master's: `reload()` sends it SIGHUP (what `systemctl reload nginx` does), and
stopping sends SIGQUIT, then SIGKILL, to that PID only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

INSTALL = "apt-get install -y nginx (scripts/setup.sh does it)"
START_TIMEOUT = 10.0


def require_nginx() -> str:
    """The nginx binary, or skip (fail when CI=true) if it is not installed."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"nginx not installed; CI must run {INSTALL} first", pytrace=False)
    pytest.skip(f"nginx not installed; run `sudo {INSTALL}` to enable the nginx tests")


CONFIG = """\
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {server_name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        return 204;
    }}
}}
"""


class Nginx:
    """nginx serving `cert`/`key` (files it re-reads on reload) for `server_name`."""

    def __init__(self, root: Path, port: int, server_name: str, cert: Path, key: Path) -> None:
        self.binary = require_nginx()
        self.root, self.port = root, port
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "nginx.conf"
        self.config.write_text(
            CONFIG.format(root=root, port=port, server_name=server_name, cert=cert, key=key)
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-p", str(self.root), "-c", str(self.config), "-e", "stderr"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "stderr.log").open("wb"),
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited {self.process.returncode}: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"nginx did not listen on {self.port}: {self.log()}")

    def log(self) -> str:
        parts = [p.read_text(errors="replace") for p in self.root.glob("*.log") if p.exists()]
        return " | ".join(part.strip() for part in parts if part.strip())[-2000:]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGQUIT)  # graceful shutdown of this master only
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def __enter__(self) -> Nginx:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
