"""What a person needs to recognise a certificate, and comparing keys: bytes in, findings out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import NameOID

# What cryptography raises for malformed DER, whether it parses eagerly or lazily.
MALFORMED = (
    ValueError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


def signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when `issuer`'s name and key signed `child`."""
    try:
        child.verify_directly_issued_by(issuer)
    except (*MALFORMED, TypeError, InvalidSignature):
        return False
    return True


_EC_NAMES = {"secp256r1": "ec256", "secp384r1": "ec384", "secp521r1": "ec521"}


@dataclass(frozen=True)
class CertInfo:
    """What a person needs to recognise a certificate."""

    names: list[str]
    subject_cn: str | None
    issuer: str
    serial: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    key_type: str
    is_ca: bool


def key_type_of(public_key: PublicKeyTypes) -> str:
    """Short key type name: rsa2048, ec256, ec384, ed25519, ..."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _EC_NAMES.get(public_key.curve.name, f"ec-{public_key.curve.name}")
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"dsa{public_key.key_size}"
    return type(public_key).__name__.removesuffix("PublicKey").lower()


def key_matches(cert: x509.Certificate, private_key: PrivateKeyTypes) -> bool:
    """True when the private key is the one the certificate certifies."""
    try:
        return spki(cert.public_key()) == spki(private_key.public_key())
    except (*MALFORMED, TypeError):
        return False


def pem_pair_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """True when both parse and the key is the one the certificate certifies (doctor)."""
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, None)
    except (ValueError, TypeError):
        return False
    return key_matches(cert, key)


def cert_info(cert: x509.Certificate) -> CertInfo:
    """Summarise a certificate; a malformed one raises cryptography's error."""
    cn = first_attribute(cert.subject, NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertInfo(
        names=names or ([cn] if cn else []),
        subject_cn=cn,
        issuer=clean(readable_name(cert.issuer)),
        serial=serial_hex(cert.serial_number),
        fingerprint_sha256=fingerprint(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type_of(cert.public_key()),
        is_ca=is_ca,
    )


def serial_hex(serial: int) -> str:
    """A serial number as `openssl x509 -serial` prints it: upper-case hex, whole bytes."""
    digits = format(serial, "X")
    return digits.zfill(len(digits) + len(digits) % 2)


def spki(public_key: PublicKeyTypes) -> bytes:
    """A public key's DER SubjectPublicKeyInfo, to compare keys."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as uppercase hex pairs joined by colons."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def first_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    """The first value of an attribute in a name, as text."""
    attributes = name.get_attributes_for_oid(oid)
    if not attributes:
        return None
    value = attributes[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def readable_name(name: x509.Name) -> str:
    """A name as people say it: its CN, else its O, else the full DN."""
    return (
        first_attribute(name, NameOID.COMMON_NAME)
        or first_attribute(name, NameOID.ORGANIZATION_NAME)
        or name.rfc4514_string()
        or "(empty name)"
    )


def label(info: CertInfo) -> str:
    """How messages refer to a certificate."""
    return clean(info.subject_cn or (info.names[0] if info.names else f"serial {info.serial}"))


def name_of(cert: x509.Certificate) -> str:
    """How messages refer to a certificate known by its subject."""
    return clean(readable_name(cert.subject))


def clean(text: str) -> str:
    """Keep a message one printable line, whatever a certificate's name holds."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in text)
    return shown if len(shown) <= 80 else shown[:77] + "..."
