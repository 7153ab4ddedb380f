"""`certctl probe`: is the live version what each endpoint actually serves?

Reads the store only (no lock, nothing written): per endpoint one bounded TLS
handshake (net/tls.py), the served chain judged by pki/served.py. renew-due uses
`wait_until_served` after a renewal and its deploy hook, retrying for a short
window because a reload takes a moment.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certctl.context import Context
from certctl.errors import BadInput, CertctlError, ExitCode
from certctl.models import CertRecord, Endpoint
from certctl.policy import hints
from certctl.policy.endpoints import server_name

PROBE_TIMEOUT = 5.0  # per endpoint: connect, STARTTLS and handshake together
PARALLEL = 16
RETRY_INTERVAL = 1.0


@dataclass(frozen=True)
class EndpointResult:
    """What one endpoint of one certificate served, and the verdict."""

    name: str
    endpoint: Endpoint
    status: str  # one of pki.served.VERDICTS
    detail: str
    serial: str | None = None
    version: int | None = None
    not_after: datetime | None = None
    address: str | None = None
    protocol: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the endpoint serves the live version, complete."""
        return self.status == "served"

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of one `probe --json` entry."""
        return {
            "name": self.name,
            "endpoint": self.endpoint.label,
            "host": self.endpoint.host,
            "port": self.endpoint.port,
            "sni": server_name(self.endpoint),
            "starttls": self.endpoint.starttls,
            "status": self.status,
            "detail": self.detail,
            "serial": self.serial,
            "version": self.version,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "address": self.address,
            "protocol": self.protocol,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class ProbeReport:
    """Every endpoint probed."""

    results: list[EndpointResult]

    @property
    def exit_code(self) -> ExitCode:
        """0 all served; 1 any endpoint serves the wrong thing; else 3 any unreachable."""
        if any(not r.ok and r.status != "unreachable" for r in self.results):
            return ExitCode.FAILED
        if any(r.status == "unreachable" for r in self.results):
            return ExitCode.NOT_YET
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `probe --json`."""
        return {
            "exit_code": int(self.exit_code),
            "endpoints": [r.to_json() for r in self.results],
        }


def probe(
    ctx: Context, names: list[str], *, timeout: float = PROBE_TIMEOUT, parallel: int = PARALLEL
) -> ProbeReport:
    """Probe the endpoints of `names` (all certificates with endpoints when empty)."""
    records: list[CertRecord] = []
    if names:
        for name in names:
            record = ctx.store.read(name)
            if not record.endpoints:
                raise BadInput(
                    f"{name!r} has no endpoints to probe: add them with"
                    f" {hints.command('set', name, '--endpoint', 'HOST[:PORT]')}"
                )
            records.append(record)
    else:
        for _, found in ctx.store.records():
            if isinstance(found, CertRecord) and found.endpoints:
                records.append(found)
    return ProbeReport(probe_records(ctx, records, timeout=timeout, parallel=parallel))


def probe_records(
    ctx: Context, records: list[CertRecord], *, timeout: float, parallel: int = PARALLEL
) -> list[EndpointResult]:
    """Every endpoint of `records`, probed in parallel, in the records' order."""
    jobs = [(_Known(ctx, record), e) for record in records for e in record.endpoints]
    if not jobs:
        return []
    workers = max(1, min(parallel, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
        futures = [pool.submit(probe_endpoint, ctx, known, e, timeout) for known, e in jobs]
        return [f.result() for f in futures]


def wait_until_served(
    ctx: Context, record: CertRecord, *, window: float, timeout: float = PROBE_TIMEOUT
) -> list[EndpointResult]:
    """Probe `record`'s endpoints until all serve the live version or `window` seconds pass.

    Returns the last result of each endpoint (those not served at the end are stale).
    """
    deadline = time.monotonic() + window
    results: dict[int, EndpointResult] = {}
    pending = list(enumerate(record.endpoints))
    while pending:
        known = _Known(ctx, record)
        for index, endpoint in pending:
            results[index] = probe_endpoint(ctx, known, endpoint, timeout)
        pending = [(i, e) for i, e in pending if not results[i].ok]
        left = deadline - time.monotonic()
        if not pending or left <= 0:
            break
        time.sleep(min(RETRY_INTERVAL, left))
    return [results[i] for i in range(len(record.endpoints))]


def stale_message(result: EndpointResult) -> str:
    """One line for an endpoint that does not serve the live version."""
    return f"endpoint {result.endpoint.label} {_verdict_words(result.status)}: {result.detail}"


def _verdict_words(status: str) -> str:
    return {
        "older": "still serves an older version",
        "unknown": "serves a certificate certctl does not know",
        "expired": "serves an expired certificate",
        "name-mismatch": "serves a certificate for other names",
        "chain-incomplete": "serves an incomplete chain",
        "unreachable": "is unreachable",
    }.get(status, status)


class _Known:
    """What the store holds for one certificate, read once and only as far as needed."""

    def __init__(self, ctx: Context, record: CertRecord) -> None:
        self.ctx, self.record = ctx, record
        self._chain: bytes | None = None
        self._versions: dict[str, int] | None = None

    @property
    def live_version(self) -> int | None:
        return self.record.current.version if self.record.current else None

    def live_chain(self) -> bytes:
        if self._chain is None:
            live = self.ctx.store.read_live(self.record.name)
            self._chain = live.get("chain.pem", b"") if live else b""
        return self._chain

    def version_of(self, fingerprint: str) -> int | None:
        current = self.record.current
        if current is not None and current.fingerprint == fingerprint:
            return current.version
        if self._versions is None:
            self._versions = self._fingerprints()
        return self._versions.get(fingerprint)

    def _fingerprints(self) -> dict[str, int]:
        """Fingerprint → version of every stored version (only when the live one wasn't served)."""
        from certctl.pki.served import pem_fingerprint

        found: dict[str, int] = {}
        for version in self.ctx.store.versions(self.record.name):
            try:
                pem = self.ctx.store.read_version(self.record.name, version)["cert.pem"]
            except (CertctlError, KeyError, OSError):
                continue  # a damaged version: `doctor` reports it
            fingerprint = pem_fingerprint(pem)
            if fingerprint:
                found[fingerprint] = version
        return found


def probe_endpoint(
    ctx: Context, known: _Known, endpoint: Endpoint, timeout: float
) -> EndpointResult:
    """One handshake with `endpoint` and its verdict (never raises for the endpoint's faults)."""
    from certctl.net.tls import Unreachable, fetch_chain
    from certctl.pki.served import judge

    name = known.record.name
    started = time.monotonic()
    try:
        # an address as server name sends no SNI (the ssl module leaves it out)
        handshake = fetch_chain(
            endpoint.host,
            endpoint.port,
            server_name(endpoint),
            timeout=timeout,
            starttls=endpoint.starttls,
        )
    except Unreachable as e:
        return EndpointResult(name, endpoint, "unreachable", str(e), seconds=_since(started))
    verdict = judge(
        handshake.chain,
        server_name=server_name(endpoint),
        live_version=known.live_version,
        live_chain_pem=known.live_chain(),
        version_of=known.version_of,
        now=ctx.now(),
    )
    served = verdict.served
    return EndpointResult(
        name,
        endpoint,
        verdict.status,
        verdict.detail,
        serial=served.serial,
        version=served.version,
        not_after=served.not_after,
        address=handshake.address,
        protocol=handshake.protocol,
        seconds=_since(started),
    )


def _since(started: float) -> float:
    return time.monotonic() - started
