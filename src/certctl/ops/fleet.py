"""Fleets: `deploy` (each host writes its live files, reloads on change) and `serve-challenges`.

`deploy` runs on every host from cron. For each certificate the host serves it
compares the live version in the store with the files in DIR/NAME/; only a
certificate that changed is written (store/fileset.publish: the four files
switched in at once, key 0600), and the host's hook runs once when anything
changed. Each host records in the store which version it deployed, so `list`
shows the fleet and `renew-due` warns about a host that lags behind.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certctl.context import Context
from certctl.errors import BadInput, CertctlError, OperationFailed
from certctl.ops.inspect import EXPORT_FILES
from certctl.store.files import CERT_MODE, KEY_MODE


def host_id(given: str | None = None) -> str:
    """This host's name in the fleet: --host-id, CERTCTL_HOST_ID, or the host name."""
    from certctl.store.fleetfiles import check_host

    return check_host(given or os.environ.get("CERTCTL_HOST_ID") or socket.gethostname())


@dataclass
class Deployed:
    """One certificate's outcome on this host."""

    name: str
    version: int | None
    action: str  # written | unchanged | no-certificate | failed
    directory: str
    previous: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of one entry of `deploy --json`."""
        return {
            "name": self.name,
            "version": self.version,
            "action": self.action,
            "directory": self.directory,
            "previous_version": self.previous,
            "error": self.error,
        }


@dataclass
class DeployReport:
    """What `deploy` did on this host."""

    host: str
    directory: str
    certificates: list[Deployed] = field(default_factory=list)
    hook_ran: bool = False
    hook_error: str | None = None

    @property
    def changed(self) -> list[Deployed]:
        """The certificates written this run."""
        return [c for c in self.certificates if c.action == "written"]

    @property
    def failed(self) -> bool:
        """True when a certificate could not be written or the hook failed."""
        return self.hook_error is not None or any(c.action == "failed" for c in self.certificates)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `deploy --json`."""
        return {
            "host": self.host,
            "directory": self.directory,
            "certificates": [c.to_json() for c in self.certificates],
            "changed": [c.name for c in self.changed],
            "hook_ran": self.hook_ran,
            "hook_error": self.hook_error,
        }


@dataclass(frozen=True)
class DeployRequest:
    """`deploy`'s options merged with the host's [deploy] table."""

    patterns: tuple[str, ...]
    directory: str | None
    hook: str | None
    host: str | None = None
    owner: str | None = None


def deploy_request(ctx: Context, given: DeployRequest) -> DeployRequest:
    """Options first, then [deploy] in the config file; BadInput when no directory or names."""
    table = ctx.settings.raw.get("deploy", {})
    patterns = given.patterns or tuple(table.get("names", ()))
    directory = given.directory or table.get("dir")
    if not directory:
        raise BadInput("deploy needs a directory: --dir DIR, or dir in the config's [deploy]")
    if not patterns:
        raise BadInput(
            "deploy needs the certificates this host serves: --name NAME (a glob, repeatable),"
            " or names in the config's [deploy]"
        )
    return DeployRequest(
        patterns=patterns,
        directory=directory,
        hook=given.hook if given.hook is not None else table.get("hook"),
        host=given.host or table.get("host_id"),
        owner=given.owner or table.get("owner"),
    )


def deploy(ctx: Context, request: DeployRequest) -> DeployReport:
    """Write each selected certificate's live files under DIR/NAME/ when they changed."""
    request = deploy_request(ctx, request)
    assert request.directory is not None
    host = host_id(request.host)
    root = Path(request.directory)
    if not root.is_dir():
        raise BadInput(f"{root} is not a directory: create it first (deploy --dir)")
    if ctx.store.owns_path(root):
        raise BadInput(f"{root} is inside the store: deploy to a directory of your own")
    names = _selected(ctx.store.names(), request.patterns)
    owner = _owner(request.owner)
    report = DeployReport(host=host, directory=str(root.absolute()))
    recorded = ctx.store.all_deployments()
    for name in names:
        outcome = _deploy_one(ctx, name, root / name, owner)
        report.certificates.append(outcome)
        mine = {d.host: d.version for d in recorded.get(name, [])}.get(host)
        if outcome.version is not None and outcome.action != "failed" and mine != outcome.version:
            ctx.store.record_deployment(name, host, outcome.version, ctx.now())
    if report.changed and request.hook:
        report.hook_ran = True
        report.hook_error = _run_hook(ctx, request.hook, report)
    return report


def _selected(names: list[str], patterns: tuple[str, ...]) -> list[str]:
    chosen: list[str] = []
    for pattern in patterns:
        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise BadInput(
                f"no certificate in the store matches {pattern!r}: see 'certctl list'"
                " (nothing was deployed)"
            )
        chosen += [n for n in matched if n not in chosen]
    return chosen


def _owner(owner: str | None) -> tuple[int, int]:
    if not owner:
        return (-1, -1)
    from certctl.ops.inspect import _owner_ids

    return _owner_ids(owner)


def _deploy_one(ctx: Context, name: str, target: Path, owner: tuple[int, int]) -> Deployed:
    from certctl.store.fileset import publish

    try:
        version = ctx.store.live_version(name)
        if version is None:
            return Deployed(name, None, "no-certificate", str(target))
        live = ctx.store.read_version(name, version)
        present = _present(target)
        if present == (live["cert.pem"], live["privkey.pem"]):
            return Deployed(name, version, "unchanged", str(target))
        target.mkdir(mode=0o755, exist_ok=True)
        files = {f: (live[f], KEY_MODE if f == "privkey.pem" else CERT_MODE) for f in EXPORT_FILES}
        publish(target, files, owner)
        previous = _previous_version(ctx, name, present)
        return Deployed(name, version, "written", str(target), previous=previous)
    except OSError as e:
        cause = "disk full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))
        return Deployed(name, None, "failed", str(target), error=f"{e.filename or target}: {cause}")
    except CertctlError as e:
        return Deployed(name, None, "failed", str(target), error=str(e))


def _present(target: Path) -> tuple[bytes, bytes] | None:
    try:
        return (target / "cert.pem").read_bytes(), (target / "privkey.pem").read_bytes()
    except OSError:
        return None


def _previous_version(ctx: Context, name: str, present: tuple[bytes, bytes] | None) -> int | None:
    """Which stored version the files replaced were (None: none, or not one of ours)."""
    if present is None:
        return None
    for version in reversed(ctx.store.versions(name)):
        if ctx.store.read_version(name, version)["cert.pem"] == present[0]:
            return version
    return None


def _run_hook(ctx: Context, hook: str, report: DeployReport) -> str | None:
    """The host's hook, once for all changed certificates; its error text, or None."""
    from certctl.ops.hooks import run_hook

    env = {
        **os.environ,
        "CERTCTL_DEPLOYED": " ".join(c.name for c in report.changed),
        "CERTCTL_DEPLOY_DIR": report.directory,
        "CERTCTL_HOST_ID": report.host,
        "CERTCTL_STORE": ctx.store.location,
    }
    return run_hook(ctx, hook, env, "the deploy hook", report.host)


def serve_challenges(ctx: Context, listen: str, ready: Any = None) -> None:
    """Answer HTTP-01 challenges from the store until SIGTERM/SIGINT (`serve-challenges`)."""
    import signal

    from certctl.challenges.responder import ChallengeServer
    from certctl.config import parse_host_port

    try:
        address, port = parse_host_port(listen, 80)
    except BadInput:
        raise BadInput(
            f"invalid --listen {listen!r}: expected IP:PORT, e.g. 127.0.0.1:8402 or [::]:80"
        ) from None
    try:
        server = ChallengeServer((address, port), ctx.store)
    except OSError as e:
        raise OperationFailed(f"serve-challenges: cannot listen on {listen}: {e.strerror}") from e

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    if ready is not None:
        ready(server.server_address)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
