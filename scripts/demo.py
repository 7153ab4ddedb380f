"""Issue a real certificate end to end against a local Pebble CA that this script starts.

Runs the three steps as a user would (order → verify → issue), then list, each
as its own certctl process, and stops Pebble afterwards. Loopback only.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pebble import PebbleServer, require_pebble  # noqa: E402


def main() -> int:
    """Start Pebble, issue one certificate with HTTP-01 standalone, list the store."""
    require_pebble()
    work = Path(tempfile.mkdtemp(prefix="certctl-demo-"))
    store = Path(os.environ.get("CERTCTL_STORE", work / "store"))
    with PebbleServer(work / "pebble", nonce_reject=5) as pebble:
        (work / "config.toml").write_text("")
        env = {
            **os.environ,
            "CERTCTL_STORE": str(store),
            "CERTCTL_CONFIG": str(work / "config.toml"),
            "CERTCTL_SERVER": pebble.directory_url,
            "CERTCTL_CA_BUNDLE": str(pebble.ca_bundle),
            # Pebble resolves every name to 127.0.0.1 through its test DNS server;
            # certctl's self-check asks the same server and port the CA will use.
            "CERTCTL_RESOLVER": pebble.dns_address,
            "CERTCTL_CHECK_HTTP_PORT": str(pebble.http_port),
        }
        certctl = str(Path(sys.executable).parent / "certctl")
        domain = "www.demo.example"
        steps = [
            [
                "order",
                "-d",
                domain,
                "--standalone",
                "--http-port",
                str(pebble.http_port),
                "--agree-tos",
                "--email",
                "ops@demo.example",
            ],
            ["verify", domain],
            ["issue", domain],
            ["list"],
        ]
        print(f"Pebble ACME CA at {pebble.directory_url}; store at {store}\n")
        for step in steps:
            print("$ certctl " + shlex.join(step), flush=True)
            proc = subprocess.run([certctl, *step], env=env, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                print(f"demo: step failed with exit code {proc.returncode}", file=sys.stderr)
                return proc.returncode
            print()
        live = store / "certs" / domain / "live"
        print(f"Live files (point your web server here): {live}/fullchain.pem, {live}/privkey.pem")
    return 0


if __name__ == "__main__":
    sys.exit(main())
