"""Build a synthetic certctl store of many certificates in a realistic mix of states."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

STORE_SIZE = 1000

ISSUERS_ACME = ["R10", "R11", "E5", "E6"]
ISSUERS_UPLOAD = [
    "Sectigo RSA Domain Validation Secure Server CA",
    "DigiCert Global G2 TLS RSA SHA256 2020 CA1",
    "GlobalSign GCC R6 AlphaSSL CA 2023",
    "ZeroSSL ECC Domain Secure Site CA",
]
WORDS = ["shop", "api", "mail", "blog", "app", "cdn", "static", "auth", "status", "docs"]
# State the record is built to have → share of the store (the rest are "valid").
STATE_MIX = {"due": 0.08, "expiring": 0.07, "expired": 0.05, "pending": 0.03, "failed": 0.02}


def _templates() -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """One EC P-256 key (PEM) and a few self-signed (cert, chain) PEM pairs reused by all."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    now = datetime.now(UTC)
    pairs = []
    for sans in (
        ["bench.example.com"],
        ["bench.example.com", "www.bench.example.com"],
        [f"{w}.bench.example.com" for w in WORDS[:5]],
        ["*.bench.example.com", "bench.example.com"],
    ):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=89))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        pairs.append((cert_pem, cert_pem))  # chain: the self-signed cert stands in for an R1x
    return key_pem, pairs


def _domains(rng: random.Random, index: int) -> tuple[str, list[str]]:
    """A certificate name and its domains: single, www+apex, multi-SAN or wildcard."""
    base = f"{rng.choice(WORDS)}-{index:04d}.example.com"
    shape = rng.random()
    if shape < 0.55:
        return base, [base]
    if shape < 0.80:
        return base, [base, f"www.{base}"]
    if shape < 0.92:
        return base, [base, *(f"{w}.{base}" for w in rng.sample(WORDS, rng.randint(2, 8)))]
    return f"wildcard.{base}", [f"*.{base}", base]


def _record(
    rng: random.Random, index: int, now: datetime, mix: dict[str, float]
) -> tuple[Any, str]:
    """A CertRecord (without `current`) and the state it is built to have."""
    from certctl.models import SOURCE_ACME, SOURCE_UPLOAD, CertRecord, Validation

    name, domains = _domains(rng, index)
    wildcard = domains[0].startswith("*.")
    roll = rng.random()
    wanted = "valid"
    for state, share in mix.items():
        if roll < share:
            wanted = state
            break
        roll -= share

    upload = wanted == "expiring" or (wanted in ("valid", "expired") and rng.random() < 0.3)
    if upload:
        validation = Validation()
    elif wildcard:
        validation = Validation(challenge="dns", method=rng.choice(["rfc2136", "hook"]))
    elif wanted in ("due", "failed", "pending"):
        validation = Validation(
            challenge="http",
            method=rng.choice(["standalone", "webroot"]),
            http_port=None,
        )
    else:
        method = rng.choices(["standalone", "webroot", "manual"], weights=[4, 5, 1])[0]
        validation = Validation(challenge="http", method=method)
    if validation.method == "webroot":
        validation.webroot = f"/var/www/{name}"
    if validation.method == "standalone":
        validation.http_port = rng.choice([80, 8080, 8402])
    profile = None
    if not upload and rng.random() < 0.1:
        profile = "shortlived"
    record = CertRecord(
        name=name,
        domains=domains,
        source=SOURCE_UPLOAD if upload else SOURCE_ACME,
        key_type=rng.choice(["ec256", "ec256", "ec256", "ec384", "rsa2048"]),
        server=None if upload else "https://acme-v02.api.letsencrypt.org/directory",
        profile=profile,
        validation=validation,
        deploy_hook=rng.choice([None, None, "systemctl reload nginx", "systemctl reload haproxy"]),
        created=now - timedelta(days=rng.uniform(1, 900)),
    )
    return record, wanted


def _dates(
    rng: random.Random, record: Any, wanted: str, now: datetime
) -> tuple[datetime, datetime]:
    """not_before/not_after putting `record` in state `wanted` at `now` (14-day notices)."""
    if record.source == "upload":
        lifetime = timedelta(days=rng.choice([90, 365, 397]))
    else:
        lifetime = timedelta(days=6) if record.profile == "shortlived" else timedelta(days=90)
    third = lifetime / 3 if lifetime >= timedelta(days=10) else lifetime / 2
    window = min(timedelta(days=14), lifetime / 3)
    if wanted == "expired":
        left = -timedelta(days=rng.uniform(0.5, 60))
    elif wanted == "due":  # automatic, past the renewal point
        left = third * rng.uniform(0.2, 0.9)
    elif wanted in ("expiring", "failed"):  # inside the notice window
        left = window * rng.uniform(0.1, 0.9)
    else:  # valid (and renewals in progress): before the renewal point / notice window
        floor = max(third, window) + timedelta(hours=6)
        left = floor + (lifetime - floor) * rng.uniform(0.0, 0.95)
    not_after = (now + left).replace(microsecond=0)
    return not_after - lifetime, not_after


def build_store(
    root: Path | str,
    count: int = STORE_SIZE,
    seed: int = 20250,
    mix: dict[str, float] | None = None,
    key_file: Path | None = None,
) -> dict[str, int]:
    """Fill a new store at `root` with `count` certificates through the store contract.

    `root` is a directory or a postgresql:// URL (with `key_file`, its store key).
    Returns how many records were built for each intended state. Durability is
    deferred while building (a throwaway store needs no fsync per file; on PostgreSQL
    it is one transaction); what `list` later reads is byte-for-byte what certctl writes.
    """
    from certctl.models import Challenge, Current, OrderState
    from certctl.store.opening import open_store

    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    key_pem, pairs = _templates()
    store = open_store(str(root), key_file=key_file)
    built: dict[str, int] = {}
    store.ensure()
    with mock.patch("os.fsync", lambda fd: None), store.bulk_load():
        for index in range(count):
            record, wanted = _record(rng, index, now, STATE_MIX if mix is None else mix)
            built[wanted] = built.get(wanted, 0) + 1
            server = record.server or ""
            if wanted == "pending" and rng.random() < 0.5:
                # A first order still waiting for its challenge: no certificate yet.
                record.order = _order(rng, record, now, Challenge, OrderState, server)
                store.write_pending_key(record.name, key_pem)
                store.write(record)
                continue
            cert_pem, chain_pem = rng.choice(pairs)
            versions = 1 if wanted == "pending" else rng.choice([1, 1, 2, 3])
            for _ in range(versions):
                version = store.add_version(
                    record.name, cert=cert_pem, chain=chain_pem, key=key_pem
                )
            store.switch_live(record.name, version)
            not_before, not_after = _dates(rng, record, wanted, now)
            upload = record.source == "upload"
            bits = 128 if upload else 144  # 16-byte commercial / 18-byte Let's Encrypt serials
            record.current = Current(
                version=version,
                serial=format(rng.getrandbits(bits) | 1 << (bits - 4), "x"),
                not_before=not_before,
                not_after=not_after,
                issuer=rng.choice(ISSUERS_UPLOAD if upload else ISSUERS_ACME),
                fingerprint=rng.randbytes(32).hex(":").upper(),
                names=list(record.domains),
            )
            if wanted == "pending":  # renewal order in progress
                record.order = _order(rng, record, now, Challenge, OrderState, server)
                store.write_pending_key(record.name, key_pem)
            if wanted == "failed":
                record.renewal = {
                    "failures": rng.randint(1, 4),
                    "last_attempt": now - timedelta(hours=rng.uniform(1, 20)),
                    "last_error": "the CA refused: urn:ietf:params:acme:error:connection",
                }
            if wanted in ("expiring", "expired"):
                record.notices = {"last_sent": now - timedelta(hours=rng.uniform(1, 30))}
            if record.source != "upload":  # as after an earlier run: ARI checked recently
                record.renewal["ari_next_check"] = now + timedelta(hours=rng.uniform(1, 6))
            store.write(record)
    store.close()
    return built


def _order(
    rng: random.Random, record: Any, now: datetime, challenge_cls: Any, order_cls: Any, server: str
) -> Any:
    base = server.removesuffix("/directory") or "https://acme.example"
    order_id = rng.getrandbits(48)
    challenges = []
    for domain in record.domains:
        authz = rng.getrandbits(48)
        token = rng.randbytes(32).hex()
        dns = record.validation.challenge == "dns"
        challenges.append(
            challenge_cls(
                domain=domain,
                authz_url=f"{base}/acme/authz/{authz}",
                url=f"{base}/acme/chall/{authz}/{rng.getrandbits(24)}",
                type="dns-01" if dns else "http-01",
                token=token,
                validation=rng.randbytes(32).hex() if dns else f"{token}.{rng.randbytes(16).hex()}",
            )
        )
    return order_cls(
        url=f"{base}/acme/order/{order_id}",
        status="pending",
        finalize_url=f"{base}/acme/finalize/{order_id}",
        expires=now + timedelta(days=6),
        challenges=challenges,
        created=now - timedelta(hours=rng.uniform(1, 48)),
        profile=record.profile,
    )
