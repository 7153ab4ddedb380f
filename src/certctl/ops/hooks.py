"""Deploy hooks: the user's command run after a certificate changed."""

from __future__ import annotations

import os

from certctl.context import Context
from certctl.models import CertRecord

HOOK_TIMEOUT = 300.0


def run_deploy_hook(ctx: Context, record: CertRecord) -> str | None:
    """Run the certificate's deploy hook after it changed; the error text, or None."""
    if not record.deploy_hook:
        return None
    import subprocess

    paths = ctx.store.live_paths(record.name)
    env = {
        **os.environ,
        "CERTCTL_NAME": record.name,
        "CERTCTL_DOMAINS": " ".join(record.domains),
        "CERTCTL_STORE": str(ctx.store.root),  # so `certctl export` in the hook finds it
        "CERTCTL_LIVE_DIR": str(paths.directory),
        "CERTCTL_CERT_PATH": str(paths.cert),
        "CERTCTL_CHAIN_PATH": str(paths.chain),
        "CERTCTL_FULLCHAIN_PATH": str(paths.fullchain),
        "CERTCTL_KEY_PATH": str(paths.privkey),
    }
    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", record.deploy_hook],
            env=env,
            capture_output=True,
            text=True,
            timeout=HOOK_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"deploy hook of {record.name!r} timed out after {HOOK_TIMEOUT:g}s"
    except OSError as e:
        return f"deploy hook of {record.name!r} could not run: {e.strerror}"
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return f"deploy hook of {record.name!r} exited {proc.returncode}: {tail}"
    return None
