"""Parse and check certificates, keys and chains for upload: bytes in, findings out."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from certctl.errors import BadInput

MAX_INPUT_BYTES = 1024 * 1024
MAX_CERTIFICATES = 20  # a chain has a handful; more means a trust store was given
MIN_RSA_BITS = 2048

# What cryptography raises for malformed DER, parsed eagerly or lazily.
_MALFORMED = (
    ValueError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)
_SUPPORTED_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
_SUPPORTED_PUBLIC_KEYS = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)
_EC_NAMES = {"secp256r1": "ec256", "secp384r1": "ec384", "secp521r1": "ec521"}
_CERT_LABELS = ("CERTIFICATE", "X509 CERTIFICATE")
_KEY_LABELS = (
    "PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "DSA PRIVATE KEY",
)
_CSR_LABELS = ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")
_PUBLIC_KEY_LABELS = ("PUBLIC KEY", "RSA PUBLIC KEY")
_MARKER = re.compile(rb"-----(BEGIN|END) ([^\r\n]*?)-----")
_HOW_TO_UNLOCK = "give it with --passphrase-env VAR or --passphrase-file FILE"
_KeyLoader = Callable[[bytes, bytes | None], PrivateKeyTypes]


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


@dataclass(frozen=True)
class UploadMaterial:
    """A checked leaf, its chain (issuer first, root left out) and its key."""

    leaf: x509.Certificate
    chain: list[x509.Certificate]
    key_pem: bytes = field(repr=False)
    info: CertInfo
    warnings: list[str]

    def cert_pem(self) -> bytes:
        """The leaf certificate as PEM."""
        return self.leaf.public_bytes(serialization.Encoding.PEM)

    def chain_pem(self) -> bytes:
        """The intermediates as PEM, issuer of the leaf first."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def fullchain_pem(self) -> bytes:
        """Leaf then intermediates: what a web server sends."""
        return self.cert_pem() + self.chain_pem()


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
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        return cert.public_key().public_bytes(*spki) == private_key.public_key().public_bytes(*spki)
    except (*_MALFORMED, TypeError):
        return False


def cert_info(cert: x509.Certificate) -> CertInfo:
    """Summarise a certificate; a malformed one raises cryptography's error."""
    cn = _first_attribute(cert.subject, NameOID.COMMON_NAME)
    return CertInfo(
        names=_names(cert, cn),
        subject_cn=cn,
        issuer=_readable_name(cert.issuer),
        serial=format(cert.serial_number, "x"),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type_of(cert.public_key()),
        is_ca=_is_ca(cert),
    )


def cert_info_pem(pem: bytes) -> CertInfo:
    """Summarise the first certificate in PEM data."""
    for n, block in enumerate(_pem_blocks("the PEM data", pem), 1):
        if block.label in _CERT_LABELS:
            where = f"the PEM data (block {n})"
            return _parse_cert(where, _block_der(where, block))[1]
    raise BadInput("no certificate in the PEM data: expected a -----BEGIN CERTIFICATE----- block")


def load_upload(
    *,
    cert: bytes | None,
    key: bytes | None,
    chain: bytes | None,
    bundle: bytes | None,
    pkcs12: bytes | None,
    passphrase: bytes | None,
    now: datetime,
    strict: bool = False,
    allow_expired: bool = False,
    roots: Sequence[x509.Certificate] = (),
) -> UploadMaterial:
    """Check uploaded material and return it in order, or raise BadInput naming the problem.

    `roots` are trust anchors (e.g. the system trust store): a chain whose top is
    signed by one of them is complete. Without them, only a leaf given with no
    intermediate at all is reported as missing one.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    found = _Found(passphrase)
    for flag, data in (("--cert", cert), ("--key", key), ("--chain", chain), ("--bundle", bundle)):
        if data is not None:
            _read_input(found, flag, data)
    if pkcs12 is not None:
        _read_pkcs12(found, "the --pkcs12 input", _checked_size("the --pkcs12 input", pkcs12))
    leaf, leaf_info = _find_leaf(found)
    private_key = _the_key(found, leaf, leaf_info)
    chain_certs, root, leftovers = _build_chain(leaf, [c for c in found.certs if c is not leaf])
    _refuse_unrelated(leaf, chain_certs, leftovers)
    warnings = list(found.warnings)
    warnings += _validity_warnings(leaf, leaf_info, chain_certs, found, now, allow_expired)
    top = chain_certs[-1] if chain_certs else leaf
    if root is None and top.subject == top.issuer:
        warnings.append(
            f"self-signed certificate: browsers will not trust {_label(leaf_info)} "
            "unless it is installed on every client"
        )
    elif root is None and not any(_issued(top, r) for r in roots) and (roots or not chain_certs):
        message = (
            f"missing intermediate: the chain ends at {_clean(_readable_name(top.issuer))} "
            "which is not in the input; browsers without it cached may fail — "
            "add the intermediate with --chain"
        )
        if strict:
            raise BadInput(message + " (refused because of --strict)")
        warnings.append(message)
    if passphrase is not None and not found.passphrase_used:
        warnings.append("a passphrase was given but no input was encrypted; it was ignored")
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return UploadMaterial(leaf, chain_certs, key_pem, leaf_info, warnings)


@dataclass
class _Found:
    """Everything read from the inputs so far."""

    passphrase: bytes | None
    certs: list[x509.Certificate] = field(default_factory=list)
    infos: dict[str, CertInfo] = field(default_factory=dict)  # by fingerprint
    keys: list[tuple[PrivateKeyTypes, str]] = field(default_factory=list)
    strays: list[tuple[str, str]] = field(default_factory=list)  # (what, where)
    warnings: list[str] = field(default_factory=list)
    passphrase_used: bool = False

    def add_cert(self, where: str, cert: x509.Certificate | bytes) -> None:
        """Keep a certificate once, however many inputs carry it."""
        parsed, info = _parse_cert(where, cert)
        if info.fingerprint_sha256 not in self.infos:
            self.infos[info.fingerprint_sha256] = info
            self.certs.append(parsed)

    def info(self, cert: x509.Certificate) -> CertInfo:
        """The summary of a certificate already added."""
        return self.infos[cert.fingerprint(hashes.SHA256()).hex(":").upper()]

    def add_key(self, where: str, key: PrivateKeyTypes) -> None:
        """Keep a supported private key once."""
        if not isinstance(key, _SUPPORTED_KEYS):
            raise BadInput(
                f"unsupported key type {key_type_of(key.public_key())} in {where}: "
                "certctl takes RSA, ECDSA, Ed25519 and Ed448 keys"
            )
        if not any(_same_key(key, k) for k, _ in self.keys):
            self.keys.append((key, where))


@dataclass(frozen=True)
class _Block:
    """One PEM block: its label, its full text and its body."""

    label: str
    text: bytes
    body: bytes


def _read_input(found: _Found, flag: str, data: bytes) -> None:
    """Read one PEM or DER input into `found`."""
    where = f"the {flag} input"
    data = _normalise(_checked_size(where, data))
    if b"-----BEGIN" not in data and b"-----END" not in data:
        _read_der(found, where, data)
        return
    for n, block in enumerate(_pem_blocks(where, data), 1):
        _read_block(found, f"{where} (block {n}, {_clean(block.label)})", block)


def _checked_size(where: str, data: bytes) -> bytes:
    """Refuse inputs that are empty or too large to be certificates."""
    if len(data) > MAX_INPUT_BYTES:
        raise BadInput(
            f"{where} is over 1 MiB ({len(data) / MAX_INPUT_BYTES:.1f} MiB): certificates "
            "and keys take a few KiB — is this the right file?"
        )
    if not data.strip():
        raise BadInput(f"{where} is empty: give a file that holds the certificate or key")
    return data


def _normalise(data: bytes) -> bytes:
    """Undo byte-order marks and CRLF line ends from editors on Windows."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            data = data.decode("utf-16").encode("ascii", "replace")
        except UnicodeError:
            return data
    data = data.removeprefix(b"\xef\xbb\xbf")
    if b"-----BEGIN" in data or b"-----END" in data:
        data = data.replace(b"\r\n", b"\n")
    return data


def _pem_blocks(where: str, data: bytes) -> list[_Block]:
    """Split PEM text into blocks, refusing cut-short or mismatched ones."""
    blocks: list[_Block] = []
    begin: re.Match[bytes] | None = None
    for marker in _MARKER.finditer(data):
        kind, label = marker.group(1), marker.group(2)
        shown = _clean(label.decode("ascii", "replace"))
        if kind == b"BEGIN" and begin is not None:
            break  # the open block has no END: reported as truncated below
        if kind == b"BEGIN":
            begin = marker
        elif begin is None:
            raise BadInput(
                f"{where} is damaged: '-----END {shown}-----' has no BEGIN line; "
                "copy the file again in full"
            )
        elif label != begin.group(2):
            raise BadInput(
                f"{where} is damaged: a BEGIN {_clean(begin.group(2).decode('ascii', 'replace'))} "
                f"block ends with END {shown}; copy the file again in full"
            )
        else:
            text = data[begin.start() : marker.end()] + b"\n"
            body = data[begin.end() : marker.start()]
            blocks.append(_Block(label.decode("ascii", "replace"), text, body))
            begin = None
    if begin is not None:
        label = _clean(begin.group(2).decode("ascii", "replace"))
        raise BadInput(
            f"{where} is truncated: '-----BEGIN {label}-----' has no matching END line; "
            "the file was cut short — copy it again in full"
        )
    if not blocks:
        raise BadInput(
            f"{where} has no complete PEM block (-----BEGIN ...----- to -----END ...-----)"
        )
    return blocks


def _read_block(found: _Found, where: str, block: _Block) -> None:
    """Take what one PEM block holds, or refuse it."""
    label = block.label
    if label in _CERT_LABELS:
        found.add_cert(where, _block_der(where, block))
    elif label in _KEY_LABELS:
        key = _load_key(found, where, block.text, serialization.load_pem_private_key)
        found.add_key(where, key)
    elif label in _CSR_LABELS:
        found.strays.append(("a certificate signing request (CSR)", where))
    elif label in _PUBLIC_KEY_LABELS:
        found.strays.append(("a bare public key", where))
    elif label == "PKCS7":
        _read_pkcs7(found, where, _block_der(where, block))
    elif not label.endswith(" PARAMETERS"):  # EC/DH parameters beside a key: harmless
        raise BadInput(
            f"unsupported PEM block '{_clean(label)}' in {where}: certctl reads "
            "CERTIFICATE and PRIVATE KEY blocks"
        )


def _block_der(where: str, block: _Block) -> bytes:
    """Decode a PEM block's base64 body."""
    try:
        return base64.b64decode(b"".join(block.body.split()), validate=True)
    except binascii.Error as exc:
        raise BadInput(f"{where} is damaged: its base64 text is invalid; copy it again") from exc


def _read_der(found: _Found, where: str, data: bytes) -> None:
    """Identify one binary input: certificate, key, PKCS#12, PKCS#7, or refuse it."""
    try:
        cert = x509.load_der_x509_certificate(data)
    except _MALFORMED:
        pass
    else:
        found.add_cert(where, cert)
        return
    if _looks_like_pkcs12(data):
        _read_pkcs12(found, where, data)
        return
    try:
        found.add_key(where, serialization.load_der_private_key(data, None))
        return
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        found.add_key(where, _load_key(found, where, data, serialization.load_der_private_key))
        return
    except _MALFORMED:
        pass
    for what, probe in (
        ("a certificate signing request (CSR)", x509.load_der_x509_csr),
        ("a bare public key", serialization.load_der_public_key),
    ):
        try:
            probe(data)
        except _MALFORMED:
            continue
        found.strays.append((what, where))
        return
    try:
        certs = pkcs7.load_der_pkcs7_certificates(data)
    except _MALFORMED:
        kind = "text without a PEM block" if _is_text(data) else "binary data"
        raise BadInput(
            f"{where} is not a certificate or key: {kind} that is neither PEM, DER nor "
            "PKCS#12 — is this the right file?"
        ) from None
    for cert in certs:
        found.add_cert(where, cert)


def _read_pkcs7(found: _Found, where: str, der: bytes) -> None:
    """Take the certificates of a PKCS#7 (.p7b) bundle."""
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except _MALFORMED as exc:
        raise BadInput(f"{where} is damaged: not a valid PKCS#7 certificate bundle") from exc
    for cert in certs:
        found.add_cert(where, cert)


def _load_key(found: _Found, where: str, data: bytes, loader: _KeyLoader) -> PrivateKeyTypes:
    """Load a private key, decrypting it with the passphrase only if it is encrypted."""
    try:
        return loader(data, None)
    except TypeError:
        pass  # cryptography: "Password was not given but private key is encrypted"
    except _MALFORMED as exc:
        raise BadInput(
            f"the private key in {where} is damaged or in an unsupported format; export it again"
        ) from exc
    if found.passphrase is None:
        raise BadInput(
            f"the private key in {where} is encrypted and no passphrase was given: {_HOW_TO_UNLOCK}"
        )
    try:
        key = loader(data, found.passphrase)
    except (*_MALFORMED, TypeError) as exc:
        raise BadInput(
            f"could not decrypt the private key in {where}: wrong passphrase (or the key is "
            "damaged); check the passphrase"
        ) from exc
    found.passphrase_used = True
    return key


def _looks_like_pkcs12(data: bytes) -> bool:
    """True when data starts like a PFX: SEQUENCE { INTEGER 3, ... } (RFC 7292 §4)."""
    if len(data) < 8 or data[0] != 0x30:
        return False
    skip = data[1] - 0x80 if data[1] > 0x80 else 0  # long-form length octets
    return skip <= 4 and data[2 + skip : 5 + skip] == b"\x02\x01\x03"


def _read_pkcs12(found: _Found, where: str, data: bytes) -> None:
    """Take the key and certificates of a PKCS#12 file, with or without a password."""
    if not _looks_like_pkcs12(data):
        is_pem = b"-----BEGIN" in data
        hint = "it is PEM: pass it with --bundle" if is_pem else "is this the right file?"
        raise BadInput(f"{where} is not a PKCS#12 (.pfx/.p12) file: {hint}")
    given = found.passphrase
    attempts = [given, None] if given is not None else [None, b""]
    for password in attempts:
        try:
            contents = pkcs12.load_pkcs12(data, password)
        except UnsupportedAlgorithm as exc:
            raise BadInput(
                f"{where} is encrypted with an algorithm no longer supported (e.g. RC2): export it "
                "again with AES (openssl pkcs12 -export -keypbe AES-256-CBC -certpbe AES-256-CBC)"
            ) from exc
        except (ValueError, TypeError):
            continue
        found.passphrase_used = found.passphrase_used or (given is not None and password is given)
        break
    else:
        if given is None:
            raise BadInput(
                f"{where} is a password-protected PKCS#12 file (or damaged): {_HOW_TO_UNLOCK}"
            )
        raise BadInput(f"could not open {where}: wrong PKCS#12 password (or the file is damaged)")
    if contents.key is not None:
        found.add_key(where, contents.key)
    if contents.cert is not None:
        found.add_cert(where, contents.cert.certificate)
    for extra in contents.additional_certs:
        found.add_cert(where, extra.certificate)


def _parse_cert(where: str, cert: x509.Certificate | bytes) -> tuple[x509.Certificate, CertInfo]:
    """Parse a certificate completely now, so malformed parts fail here as BadInput."""
    try:
        parsed = x509.load_der_x509_certificate(cert) if isinstance(cert, bytes) else cert
        return parsed, cert_info(parsed)
    except _MALFORMED as exc:
        raise BadInput(
            f"the certificate in {where} is damaged or malformed; get a fresh copy"
        ) from exc


def _find_leaf(found: _Found) -> tuple[x509.Certificate, CertInfo]:
    """The one certificate that is not a CA and issued nothing else in the input."""
    if not found.certs:
        if found.strays:
            what, where = found.strays[0]
            raise BadInput(
                f"{where} holds {what}, not a certificate: give the certificate your CA "
                "issued (-----BEGIN CERTIFICATE-----)"
            )
        raise BadInput(
            "no certificate in the input: give it with --cert (PEM or DER), "
            "or a --bundle or --pkcs12 that holds it"
        )
    found.warnings += [f"ignored {what} in {where}" for what, where in found.strays]
    if len(found.certs) > MAX_CERTIFICATES:
        raise BadInput(
            f"too many certificates in the input ({len(found.certs)}): is this a trust store? "
            "give only the certificate and its chain"
        )
    claimed = {c.issuer for c in found.certs if c.subject != c.issuer}
    leaves = [c for c in found.certs if not found.info(c).is_ca and c.subject not in claimed]
    if not leaves:
        listed = ", ".join(_label(found.info(c)) for c in found.certs)
        raise BadInput(
            f"CA certificate given as the leaf: every certificate in the input is a CA ({listed}); "
            "give the server certificate your CA issued"
        )
    if len(leaves) > 1:
        count = "two" if len(leaves) == 2 else str(len(leaves))
        listed = ", ".join(_label(found.info(c)) for c in leaves)
        raise BadInput(
            f"{count} leaf certificates in the input ({listed}): upload one certificate at a "
            "time, each with its own chain"
        )
    return leaves[0], found.info(leaves[0])


def _the_key(found: _Found, leaf: x509.Certificate, info: CertInfo) -> PrivateKeyTypes:
    """The single private key, checked against the leaf."""
    if not isinstance(leaf.public_key(), _SUPPORTED_PUBLIC_KEYS):
        raise BadInput(
            f"unsupported key type {info.key_type} in the certificate {_label(info)}: certctl "
            "takes RSA, ECDSA, Ed25519 and Ed448 keys"
        )
    if not found.keys:
        stray = next((where for what, where in found.strays if "public key" in what), None)
        hint = f" ({stray} holds a public key, not the private key)" if stray else ""
        raise BadInput(
            f"no private key in the input{hint}: give it with --key, or include it in the "
            "--bundle or --pkcs12"
        )
    if len(found.keys) > 1:
        places = " and ".join(where for _, where in found.keys[:2])
        raise BadInput(
            f"two private keys in the input ({places}): give only the key of the certificate"
        )
    key = found.keys[0][0]
    if not key_matches(leaf, key):
        owner = next((c for c in found.certs if key_matches(c, key)), None)
        whose = _label(found.info(owner)) if owner else "another certificate"
        raise BadInput(
            f"the private key does not match the certificate {_label(info)} (it belongs to "
            f"{whose}): "
            "give the key that was generated for this certificate"
        )
    return key


def _build_chain(
    leaf: x509.Certificate, pool: list[x509.Certificate]
) -> tuple[list[x509.Certificate], x509.Certificate | None, list[x509.Certificate]]:
    """Walk from the leaf up by verified signatures: (intermediates, root, leftovers)."""
    chain: list[x509.Certificate] = []
    current, remaining = leaf, list(pool)
    if leaf.subject == leaf.issuer:
        _check_self_signed(leaf)
        return chain, None, remaining
    while named := [c for c in remaining if c.subject == current.issuer]:
        signers = [c for c in named if _issued(current, c)]
        if not signers:
            raise BadInput(
                f"chain link does not verify: {_name_of(current)} names "
                f"{_clean(_readable_name(current.issuer))} as its issuer, but that certificate "
                "in the input did not sign it; get the matching chain from your CA"
            )
        signers.sort(key=lambda c: c.subject == c.issuer)  # prefer a cross-sign to a root
        parent = signers[0]
        remaining.remove(parent)
        if parent.subject == parent.issuer:
            _check_self_signed(parent)
            return chain, parent, remaining
        chain.append(parent)
        current = parent
    return chain, None, remaining


def _refuse_unrelated(
    leaf: x509.Certificate, chain: list[x509.Certificate], leftovers: list[x509.Certificate]
) -> None:
    """Refuse certificates that are not on the leaf's path; alternative roots are dropped."""
    path = [leaf, *chain]
    for cert in leftovers:
        is_root = cert.subject == cert.issuer and _issued(cert, cert)
        if is_root and any(_issued(member, cert) for member in path):
            continue
        shown = " → ".join(_name_of(c) for c in path)
        raise BadInput(
            f"unrelated certificate in the input: {_name_of(cert)} is not part of the chain "
            f"of {_name_of(leaf)} ({shown}); remove it, or upload it separately"
        )


def _validity_warnings(
    leaf: x509.Certificate,
    info: CertInfo,
    chain: list[x509.Certificate],
    found: _Found,
    now: datetime,
    allow_expired: bool,
) -> list[str]:
    """Refuse an expired leaf (unless allowed); warn about other date problems."""
    warnings: list[str] = []
    if now > info.not_after:
        message = f"certificate {_label(info)} expired on {_when(info.not_after)}"
        if not allow_expired:
            raise BadInput(f"{message}: renew it, or pass --allow-expired to store it anyway")
        warnings.append(message)
    if now < info.not_before:
        warnings.append(
            f"certificate {_label(info)} is not yet valid: valid from {_when(info.not_before)}"
        )
    for cert in chain:
        chain_info = found.info(cert)
        if now > chain_info.not_after:
            warnings.append(
                f"chain certificate {_label(chain_info)} expired on {_when(chain_info.not_after)}: "
                "get the current chain from your CA"
            )
    public_key = leaf.public_key()
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < MIN_RSA_BITS:
        warnings.append(
            f"weak key: {info.key_type}; browsers refuse RSA keys under {MIN_RSA_BITS} bits"
        )
    return warnings


def _issued(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when `issuer`'s name and key signed `child`."""
    try:
        child.verify_directly_issued_by(issuer)
    except (*_MALFORMED, TypeError, InvalidSignature):
        return False
    return True


def _check_self_signed(cert: x509.Certificate) -> None:
    """Refuse a certificate that names itself as issuer but did not sign itself."""
    if not _issued(cert, cert):
        raise BadInput(
            f"chain link does not verify: {_name_of(cert)} claims to be self-signed but its "
            "signature does not verify; get a fresh copy"
        )


def _same_key(a: PrivateKeyTypes, b: PrivateKeyTypes) -> bool:
    """True when two private keys have the same public half."""
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_key().public_bytes(*spki) == b.public_key().public_bytes(*spki)


def _names(cert: x509.Certificate, cn: str | None) -> list[str]:
    """DNS and IP subject alternative names, or the CN when there are none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [cn] if cn else []
    names = san.get_values_for_type(x509.DNSName)
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names or ([cn] if cn else [])


def _is_ca(cert: x509.Certificate) -> bool:
    """True for a certificate with basicConstraints CA:TRUE."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _first_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    """The first value of an attribute in a name, as text."""
    attributes = name.get_attributes_for_oid(oid)
    if not attributes:
        return None
    value = attributes[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _readable_name(name: x509.Name) -> str:
    """A name as people say it: its CN, else its O, else the full DN."""
    return (
        _first_attribute(name, NameOID.COMMON_NAME)
        or _first_attribute(name, NameOID.ORGANIZATION_NAME)
        or name.rfc4514_string()
        or "(empty name)"
    )


def _label(info: CertInfo) -> str:
    """How messages refer to a certificate."""
    return _clean(info.subject_cn or (info.names[0] if info.names else f"serial {info.serial}"))


def _name_of(cert: x509.Certificate) -> str:
    """How messages refer to a certificate known only by its subject."""
    return _clean(_readable_name(cert.subject))


def _clean(text: str) -> str:
    """Keep a message one printable line, whatever a certificate's name holds."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in text)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _when(moment: datetime) -> str:
    """A date and time for messages, in UTC."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _is_text(data: bytes) -> bool:
    """True when data looks like text rather than binary."""
    sample = data[:4096]
    printable = sum(32 <= byte < 127 or byte in b"\r\n\t" for byte in sample)
    return printable >= 0.95 * len(sample)
