"""Real certificates, keys and bundles for tests, made with cryptography.

    from certfactory import make_leaf, pki

    leaf = make_leaf("www.example.com", "192.0.2.7", key="rsa2048")
    paths = leaf.write(tmp_path, passphrase=b"s3cret")  # cert/chain/fullchain/key.pem
    (tmp_path / "site.pfx").write_bytes(leaf.pkcs12(passphrase=b"s3cret"))
    short = make_leaf(days=10, not_after=now + timedelta(days=3))  # 10-day, 3 days left

The hierarchy is root -> int1 -> int2 -> leaves; `pki()` is built once per session
and valid 2020-2060, so any test clock works. Keys are cached per (kind, slot):
ask for another slot when a test needs a key nobody else has.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
CA_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
CA_NOT_AFTER = datetime(2060, 1, 1, tzinfo=UTC)
KEY_KINDS = ("ec256", "ec384", "rsa2048", "ed25519", "ed448", "rsa1024", "dsa")
_serials = itertools.count(0x1000)
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def private_key(kind: str = "ec256", slot: int = 0) -> PrivateKeyTypes:
    """A key of `kind` (see KEY_KINDS); the same object for the same (kind, slot)."""
    return _cached_key(kind, slot)


@cache  # behind a wrapper: private_key() and private_key("ec256", 0) must share one entry
def _cached_key(kind: str, slot: int) -> PrivateKeyTypes:
    """Generate a key once per session: RSA generation is slow."""
    del slot  # only part of the cache key
    if kind == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    if kind == "dsa":
        return dsa.generate_private_key(key_size=1024)
    raise ValueError(f"unknown key kind {kind!r}; choose from {KEY_KINDS}")


def _signing_hash(key: PrivateKeyTypes) -> hashes.HashAlgorithm | None:
    """Ed25519/Ed448 sign without a separate hash; everything else uses SHA-256."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def name(cn: str | None = None, org: str | None = None) -> x509.Name:
    """An X.509 name from a CN and/or an O."""
    attributes = []
    if org:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if cn:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attributes)


@dataclass(frozen=True)
class Issued:
    """A certificate with its key and the chain above it (issuer first, root apart)."""

    cert: x509.Certificate
    key: PrivateKeyTypes = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()
    root: x509.Certificate | None = None

    def cert_pem(self) -> bytes:
        """The certificate alone, PEM."""
        return self.cert.public_bytes(PEM)

    def cert_der(self) -> bytes:
        """The certificate alone, DER."""
        return self.cert.public_bytes(DER)

    def chain_pem(self, *, with_root: bool = False) -> bytes:
        """The intermediates (and the root if asked), issuer first."""
        certs = [*self.chain, self.root] if with_root and self.root else list(self.chain)
        return pem(*certs)

    def fullchain_pem(self, *, with_root: bool = False) -> bytes:
        """Certificate then chain: what a web server sends."""
        return self.cert_pem() + self.chain_pem(with_root=with_root)

    def key_pem(self, *, passphrase: bytes | None = None, traditional: bool = False) -> bytes:
        """The key as PKCS#8 PEM, or traditional ("RSA/EC PRIVATE KEY"), optionally encrypted."""
        return key_bytes(self.key, PEM, passphrase=passphrase, traditional=traditional)

    def key_der(self, *, passphrase: bytes | None = None) -> bytes:
        """The key as PKCS#8 DER, optionally encrypted."""
        return key_bytes(self.key, DER, passphrase=passphrase)

    def bundle_pem(self, *, with_root: bool = False) -> bytes:
        """Key, certificate and chain in one PEM file."""
        return self.key_pem() + self.fullchain_pem(with_root=with_root)

    def pkcs12(self, *, passphrase: bytes | None = None, with_root: bool = False) -> bytes:
        """A .pfx/.p12 holding key, certificate and chain."""
        extra = [*self.chain, self.root] if with_root and self.root else list(self.chain)
        return make_pkcs12(self.cert, self.key, extra, passphrase=passphrase)

    def write(self, directory: Path, *, passphrase: bytes | None = None) -> dict[str, Path]:
        """Write cert.pem, chain.pem, fullchain.pem and key.pem; return them by stem."""
        contents = {
            "cert": self.cert_pem(),
            "chain": self.chain_pem(),
            "fullchain": self.fullchain_pem(),
            "key": self.key_pem(passphrase=passphrase),
        }
        directory.mkdir(parents=True, exist_ok=True)
        paths = {stem: directory / f"{stem}.pem" for stem in contents}
        for stem, path in paths.items():
            path.write_bytes(contents[stem])
        return paths


@dataclass(frozen=True)
class Pki:
    """A root and two intermediates: root -> int1 -> int2."""

    root: Issued
    int1: Issued
    int2: Issued


def key_bytes(
    key: PrivateKeyTypes,
    encoding: serialization.Encoding = PEM,
    *,
    passphrase: bytes | None = None,
    traditional: bool = False,
) -> bytes:
    """Serialise a private key; traditional encrypted PEM carries Proc-Type/DEK-Info headers."""
    fmt = serialization.PrivateFormat.PKCS8
    if traditional:
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(encoding, fmt, encryption)


def pem(*items: x509.Certificate | PrivateKeyTypes | bytes) -> bytes:
    """Concatenate certificates, keys (unencrypted PKCS#8) and raw bytes as PEM."""
    out = []
    for item in items:
        if isinstance(item, bytes):
            out.append(item)
        elif isinstance(item, x509.Certificate):
            out.append(item.public_bytes(PEM))
        else:
            out.append(key_bytes(item))
    return b"".join(out)


def make_cert(
    subject: x509.Name,
    key: PrivateKeyTypes,
    *,
    issuer: Issued | None = None,
    names: tuple[str, ...] = (),
    ca: bool = False,
    not_before: datetime = CA_NOT_BEFORE,
    not_after: datetime = CA_NOT_AFTER,
    issuer_name: x509.Name | None = None,
    signing_key: PrivateKeyTypes | None = None,
    serial: int | None = None,
) -> x509.Certificate:
    """Any certificate; self-signed when no issuer. `issuer_name`/`signing_key` forge links."""
    signer = signing_key or (issuer.key if issuer else key)
    assert isinstance(signer, CertificateIssuerPrivateKeyTypes)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or (issuer.cert.subject if issuer else subject))
        .public_key(key.public_key())
        .serial_number(serial or next(_serials))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if ca:
        builder = builder.add_extension(_CA_KEY_USAGE, critical=True)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
    return builder.sign(signer, _signing_hash(signer))


def _general_name(text: str) -> x509.GeneralName:
    """An IP address SAN when the text is one, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        return x509.DNSName(text)


def pki(slot: int = 0) -> Pki:
    """The session's hierarchy; another slot is a second, unrelated hierarchy."""
    return _cached_pki(slot)


@cache
def _cached_pki(slot: int) -> Pki:
    """Build a hierarchy once per session."""
    tag = "" if slot == 0 else f" {slot}"
    root_key = private_key("rsa2048", 100 + slot)
    root_cert = make_cert(name(f"Test Root CA{tag}", "certfactory"), root_key, ca=True)
    root = Issued(root_cert, root_key)
    int1_key = private_key("ec384", 100 + slot)
    int1_cert = make_cert(name(f"Test Int1{tag}", "certfactory"), int1_key, issuer=root, ca=True)
    int1 = Issued(int1_cert, int1_key, (), root_cert)
    int2_key = private_key("ec256", 100 + slot)
    int2_cert = make_cert(name(f"Test Int2{tag}", "certfactory"), int2_key, issuer=int1, ca=True)
    int2 = Issued(int2_cert, int2_key, (int1_cert,), root_cert)
    return Pki(root, int1, int2)


def make_leaf(
    *names: str,
    key: str | PrivateKeyTypes = "ec256",
    cn: str | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    days: float = 90,
    now: datetime | None = None,
    issuer: Issued | None = None,
    ca: bool = False,
    serial: int | None = None,
) -> Issued:
    """A leaf signed by int2 (or `issuer`) for `days` days, by default from an hour before now.

    Give `not_after` alone and the leaf ends then, `days` after it began; give
    `not_before` alone and it starts then. `key` is a kind from KEY_KINDS (cached,
    slot 0) or a key object. Names that are IP addresses become IP SANs; with no
    names the leaf is for www.example.com. `now` defaults to the real clock.
    """
    names = names or ("www.example.com",)
    issuer = issuer or pki().int2
    leaf_key = private_key(key) if isinstance(key, str) else key
    lifetime = timedelta(days=days)
    if not_before is None:
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        not_before = not_after - lifetime if not_after else now - timedelta(hours=1)
    cert = make_cert(
        name(cn or names[0]),
        leaf_key,
        issuer=issuer,
        names=names,
        ca=ca,
        not_before=not_before,
        not_after=not_after or not_before + lifetime,
        serial=serial,
    )
    chain = (issuer.cert, *issuer.chain) if issuer.root else ()
    return Issued(cert, leaf_key, chain, issuer.root or issuer.cert)


def self_signed(
    *names: str, key: str | PrivateKeyTypes = "ec256", days: float = 90, now: datetime | None = None
) -> Issued:
    """A self-signed, non-CA server certificate, valid from an hour before `now`."""
    names = names or ("selfsigned.example.com",)
    leaf_key = private_key(key) if isinstance(key, str) else key
    start = (now or datetime.now(UTC)).replace(microsecond=0) - timedelta(hours=1)
    end = start + timedelta(days=days)
    cert = make_cert(name(names[0]), leaf_key, names=names, not_before=start, not_after=end)
    return Issued(cert, leaf_key)


def make_pkcs12(
    cert: x509.Certificate,
    key: PrivateKeyTypes | None,
    extra: list[x509.Certificate],
    *,
    passphrase: bytes | None = None,
) -> bytes:
    """A PKCS#12 file, password-protected when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(
        b"certfactory",
        key,
        cert,
        extra or None,
        encryption,
    )


def csr_pem(key: PrivateKeyTypes, *names: str) -> bytes:
    """A certificate signing request for the names."""
    assert isinstance(key, CertificateIssuerPrivateKeyTypes)
    builder = x509.CertificateSigningRequestBuilder().subject_name(name(names[0]))
    builder = builder.add_extension(
        x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
    )
    return builder.sign(key, _signing_hash(key)).public_bytes(PEM)


def public_key_pem(key: PrivateKeyTypes) -> bytes:
    """The bare public key (SubjectPublicKeyInfo PEM)."""
    return key.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
