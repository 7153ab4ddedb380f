"""Deploy hooks: the user's command run after a certificate changed.

What the hook prints is never lost: on success its last lines are passed on to
certctl's stderr (through the reporter, prefixed with the certificate's name);
on failure they are part of the error (README "Renewal and notices").
"""

from __future__ import annotations

import os

from certctl.context import Context
from certctl.models import CertRecord

HOOK_TIMEOUT = 300.0
TAIL_LINES = 20  # passed on after a successful run, per stream
ERROR_LINES = 5  # kept in the error of a failed run, per stream
LINE_CHARS = 300


def run_deploy_hook(ctx: Context, record: CertRecord) -> str | None:
    """Run the certificate's deploy hook after it changed; the error text, or None."""
    if not record.deploy_hook:
        return None
    paths = ctx.store.live_paths(record.name)
    env = {
        **os.environ,
        "CERTCTL_NAME": record.name,
        "CERTCTL_DOMAINS": " ".join(record.domains),
        "CERTCTL_STORE": ctx.store.location,  # so `certctl export` in the hook finds it
    }
    if paths is not None:  # a database store has no files here: the hook runs `certctl export`
        env.update(
            {
                "CERTCTL_LIVE_DIR": str(paths.directory),
                "CERTCTL_CERT_PATH": str(paths.cert),
                "CERTCTL_CHAIN_PATH": str(paths.chain),
                "CERTCTL_FULLCHAIN_PATH": str(paths.fullchain),
                "CERTCTL_KEY_PATH": str(paths.privkey),
            }
        )
    return run_hook(ctx, record.deploy_hook, env, f"deploy hook of {record.name!r}", record.name)


def run_hook(
    ctx: Context, command: str, env: dict[str, str], label: str, prefix: str
) -> str | None:
    """Run `command` with `env`; the error text (naming `label`), or None.

    On success its last lines go to the reporter as `<prefix>: deploy hook: <line>`.
    """
    import subprocess

    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", command],
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=HOOK_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        output = _joined(_text(e.stdout), _text(e.stderr))
        return f"{label} timed out after {HOOK_TIMEOUT:g}s{output}"
    except OSError as e:
        return f"{label} could not run: {e.strerror}"
    if proc.returncode != 0:
        output = _joined(proc.stdout, proc.stderr) or ": no output"
        return f"{label} exited {proc.returncode}{output}"
    for stream, text in (("", proc.stdout), (" (stderr)", proc.stderr)):
        lines, skipped = tail(text, TAIL_LINES)
        if skipped:
            ctx.reporter.info(f"{prefix}: deploy hook{stream}: … {skipped} earlier line(s)")
        for line in lines:
            ctx.reporter.info(f"{prefix}: deploy hook{stream}: {line}")
    return None


def tail(text: str, count: int) -> tuple[list[str], int]:
    """The last `count` non-blank lines (each cut to LINE_CHARS) and how many came before."""
    lines = [line.rstrip()[:LINE_CHARS] for line in text.splitlines() if line.strip()]
    return lines[-count:], max(0, len(lines) - count)


def _joined(stdout: str, stderr: str) -> str:
    """': <stderr tail>; stdout: <stdout tail>' on one line, bounded; '' when both are empty."""
    parts = []
    for label, text in (("", stderr), ("stdout: ", stdout)):
        lines, _ = tail(text, ERROR_LINES)
        if lines:
            parts.append(label + " | ".join(lines))
    return ": " + "; ".join(parts) if parts else ""


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""
