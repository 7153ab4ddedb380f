"""Private keys and CSRs (cryptography only; no ACME imports)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from certctl.errors import BadInput, StoreError

if TYPE_CHECKING:
    from ipaddress import IPv4Address, IPv6Address

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")


def generate_key(key_type: str) -> bytes:
    """A new private key as unencrypted PKCS#8 PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key: PrivateKeyTypes
    if key_type == "ec256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "ec384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif key_type.startswith("rsa") and key_type in KEY_TYPES:
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    else:
        raise BadInput(f"unknown key type {key_type!r}: choose one of {', '.join(KEY_TYPES)}")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(key_pem: bytes, what: str) -> PrivateKeyTypes:
    """Load a stored unencrypted key; StoreError names `what` when it is damaged."""
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise StoreError(f"{what} is damaged or unreadable; it cannot be used") from e


def key_id_of(key_pem: bytes) -> str:
    """A short public name for a key (SHA-256 of its public key), safe in file names."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    public = load_key(key_pem, "the new key").public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:32]


def make_csr(key_pem: bytes, domains: list[str]) -> bytes:
    """A CSR (PEM) for `domains` signed by the key; the first domain is the CN."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = load_key(key_pem, "the order's private key")
    # RFC 8738 §4 / CA/B BR: an IP address goes in an iPAddress SAN, never in the CN
    subject_name = "" if _ip(domains[0]) else domains[0]
    subject = (
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_name)])
        if 0 < len(subject_name) <= 64
        else x509.Name([])
    )
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.SubjectAlternativeName([_general_name(d) for d in domains]), False)
    )
    csr = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.PEM)


def _ip(name: str) -> IPv4Address | IPv6Address | None:
    import ipaddress

    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _general_name(name: str) -> x509.GeneralName:
    """A SAN entry: iPAddress for an IP identifier (RFC 8738), else dNSName."""
    from cryptography import x509

    address = _ip(name)
    return x509.IPAddress(address) if address else x509.DNSName(name)
