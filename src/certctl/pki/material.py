"""Parse and check certificates, keys and chains for upload: bytes in, findings out."""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from certctl.errors import BadInput
from certctl.pki.certinfo import (
    MALFORMED,
    CertInfo,
    cert_info,
    clean,
    fingerprint,
    key_matches,
    key_type_of,
    label,
    name_of,
    readable_name,
    spki,
)

MAX_INPUT_BYTES = 1024 * 1024
MAX_CERTIFICATES = 20  # a chain has a handful; more means a trust store was given
MIN_RSA_BITS = 2048

_SUPPORTED = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)
_MARKER = re.compile(rb"-----(BEGIN|END) ([^\r\n]*?)-----")
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(\*\.)?({_LABEL}\.)*{_LABEL}|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*")  # or IPs
_HOW_TO_UNLOCK = "give it with --passphrase-env VAR or --passphrase-file FILE"
_WHEN = "%Y-%m-%d %H:%M UTC"
_KEY_TYPES = "certctl takes RSA, ECDSA, Ed25519 and Ed448 keys"
_CSR = "a certificate signing request (CSR)"
_PUBLIC_KEY = "a bare public key"
_KeyLoader = Callable[[bytes, bytes | None], PrivateKeyTypes]


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
        """The intermediates as PEM, the leaf's issuer first."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def fullchain_pem(self) -> bytes:
        """Leaf then intermediates: what a web server sends."""
        return self.cert_pem() + self.chain_pem()


def cert_info_pem(pem: bytes) -> CertInfo:
    """Summarise the first certificate in PEM data."""
    for n, block in enumerate(_pem_blocks("the PEM data", pem), 1):
        if block.label in ("CERTIFICATE", "X509 CERTIFICATE"):
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

    `roots` are trust anchors (e.g. the system trust store): a chain whose top they
    signed is complete. Without them only a leaf given with no intermediate at all
    is reported as missing one, since a normal fullchain.pem also ends below a root.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    found = _Found(passphrase)
    inputs = (("--cert", cert), ("--key", key), ("--chain", chain), ("--bundle", bundle))
    with warnings.catch_warnings():  # odd but parseable fields warn; say nothing of them
        warnings.simplefilter("ignore")
        for flag, data in ((flag, data) for flag, data in inputs if data is not None):
            _read_input(found, f"the {flag} input", data)
        if pkcs12 is not None:
            _read_pkcs12(found, "the --pkcs12 input", _checked_size("the --pkcs12 input", pkcs12))
    leaf, info = _find_leaf(found)
    bad = [n for n in info.names if not n.isprintable() or not n.isascii() or " " in n]
    if bad:
        raise BadInput(
            f"the certificate names {clean(bad[0])!r}, which contains control or non-ASCII"
            " characters: refusing a certificate no browser would accept"
        )
    if not info.names:
        raise BadInput("the certificate names no domain (no SAN, no CN): refusing it")
    private_key = _the_key(found, leaf, info)
    chain_certs, root = _build_chain(leaf, [c for c in found.certs if c is not leaf])
    notes = found.warnings + _date_warnings(found, info, chain_certs, now, allow_expired)
    top = chain_certs[-1] if chain_certs else leaf
    if root is None and top.subject == top.issuer:
        marked = " (marked CA:TRUE, as openssl req -x509 makes them)" if info.is_ca else ""
        notes.append(
            f"self-signed certificate{marked}: clients will not trust {label(info)} unless"
            " they pin it (or install it as trusted on every client)"
        )
    elif root is None and not any(_issued(top, r) for r in roots) and (roots or not chain_certs):
        message = (
            f"missing intermediate: the chain ends at {clean(readable_name(top.issuer))} which"
            " is not in the input; browsers without it cached may fail — add the intermediate"
            " with --chain"
        )
        if strict:
            raise BadInput(f"{message} (refused because of --strict)")
        notes.append(message)
    public_key = leaf.public_key()
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < MIN_RSA_BITS:
        notes.append(f"weak key: {info.key_type}; browsers refuse RSA keys under 2048 bits")
    if passphrase is not None and not found.passphrase_used:
        notes.append("a passphrase was given but no input was encrypted; it was ignored")
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return UploadMaterial(leaf, chain_certs, key_pem, info, notes)


@dataclass
class _Found:
    """Everything read from the inputs so far, each certificate and key once."""

    passphrase: bytes | None
    certs: list[x509.Certificate] = field(default_factory=list)
    infos: dict[str, CertInfo] = field(default_factory=dict)  # by fingerprint
    keys: list[tuple[PrivateKeyTypes, str]] = field(default_factory=list)  # (key, where)
    strays: list[tuple[str, str]] = field(default_factory=list)  # (CSR or public key, where)
    warnings: list[str] = field(default_factory=list)
    passphrase_used: bool = False

    def add_cert(self, where: str, cert: x509.Certificate | bytes) -> None:
        """Keep a certificate, parsed in full."""
        parsed, info = _parse_cert(where, cert)
        if info.fingerprint_sha256 not in self.infos:
            self.infos[info.fingerprint_sha256] = info
            self.certs.append(parsed)

    def info(self, cert: x509.Certificate) -> CertInfo:
        """The summary of a certificate already kept."""
        return self.infos[fingerprint(cert)]

    def add_key(self, where: str, key: PrivateKeyTypes) -> None:
        """Keep a private key of a type servers can use."""
        if not isinstance(key.public_key(), _SUPPORTED):
            key_type = key_type_of(key.public_key())
            raise BadInput(f"unsupported key type {key_type} in {where}: {_KEY_TYPES}")
        if all(spki(key.public_key()) != spki(k.public_key()) for k, _ in self.keys):
            self.keys.append((key, where))


@dataclass(frozen=True)
class _Block:
    """One PEM block: its label, its full text and its body."""

    label: str
    text: bytes
    body: bytes


def _read_input(found: _Found, where: str, data: bytes) -> None:
    """Read one PEM or DER input."""
    data = _normalise(_checked_size(where, data))
    if b"-----BEGIN" not in data and b"-----END" not in data:
        _read_der(found, where, data)
        return
    for n, block in enumerate(_pem_blocks(where, data), 1):
        _read_block(found, f"{where} (block {n}, {clean(block.label)})", block)


def _checked_size(where: str, data: bytes) -> bytes:
    """Refuse inputs that are empty or too large to be certificates."""
    if len(data) > MAX_INPUT_BYTES:
        raise BadInput(f"{where} is over 1 MiB: certificates and keys take a few KiB; wrong file?")
    if not data.strip():
        raise BadInput(f"{where} is empty: give the file that holds the certificate or key")
    return data


def _normalise(data: bytes) -> bytes:
    """Undo the byte-order marks of Windows editors and shells (CRLF is fine as it is)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            data = data.decode("utf-16").encode("ascii", "replace")
        except UnicodeError:
            return data
    return data.removeprefix(b"\xef\xbb\xbf")


def _pem_blocks(where: str, data: bytes) -> list[_Block]:
    """Split PEM text into blocks, refusing cut-short or mismatched ones."""
    blocks: list[_Block] = []
    begin: re.Match[bytes] | None = None
    for marker in _MARKER.finditer(data):
        label = clean(marker.group(2).decode("ascii", "replace"))
        if marker.group(1) == b"BEGIN" and begin is not None:
            break  # the open block has no END: reported as truncated below
        if marker.group(1) == b"BEGIN":
            begin = marker
        elif begin is None:
            raise BadInput(f"{where} is damaged: END {label} has no BEGIN line; copy it again")
        elif marker.group(2) != begin.group(2):
            opened = clean(begin.group(2).decode("ascii", "replace"))
            raise BadInput(
                f"{where} is damaged: BEGIN {opened} ends with END {label}; copy it again"
            )
        else:
            text = data[begin.start() : marker.end()] + b"\n"
            blocks.append(_Block(label, text, data[begin.end() : marker.start()]))
            begin = None
    if begin is not None:
        label = clean(begin.group(2).decode("ascii", "replace"))
        raise BadInput(f"{where} is truncated: BEGIN {label} has no END line; copy the whole file")
    if not blocks:
        raise BadInput(f"{where} has no complete PEM block (-----BEGIN to -----END); copy it again")
    return blocks


def _read_block(found: _Found, where: str, block: _Block) -> None:
    """Take what one PEM block holds, or refuse it."""
    label = block.label
    if label in ("CERTIFICATE", "X509 CERTIFICATE"):
        found.add_cert(where, _block_der(where, block))
    elif label.endswith("PRIVATE KEY"):  # PKCS#8, encrypted PKCS#8, RSA/EC traditional
        found.add_key(
            where, _load_key(found, where, block.text, serialization.load_pem_private_key)
        )
    elif label.endswith("CERTIFICATE REQUEST"):
        found.strays.append((_CSR, where))
    elif label.endswith("PUBLIC KEY"):
        found.strays.append((_PUBLIC_KEY, where))
    elif label == "PKCS7":
        _read_der(found, where, _block_der(where, block))
    elif not label.endswith(" PARAMETERS"):  # EC/DH parameters beside a key are harmless
        raise BadInput(f"unsupported PEM block {label} in {where}: give certificates and keys")


def _block_der(where: str, block: _Block) -> bytes:
    """Decode a PEM block's base64 body."""
    try:
        return base64.b64decode(b"".join(block.body.split()), validate=True)
    except binascii.Error as exc:
        raise BadInput(f"{where} is damaged: invalid base64; copy it again") from exc


def _read_der(found: _Found, where: str, data: bytes) -> None:
    """Identify binary input: certificate, PKCS#7, PKCS#12, key, CSR, public key; or refuse."""
    try:
        found.add_cert(where, x509.load_der_x509_certificate(data))
        return
    except MALFORMED:
        pass
    try:
        certs = pkcs7.load_der_pkcs7_certificates(data)
    except MALFORMED:
        pass
    else:
        for cert in certs:
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
    except MALFORMED:
        pass
    probes = ((_CSR, x509.load_der_x509_csr), (_PUBLIC_KEY, serialization.load_der_public_key))
    for what, probe in probes:
        try:
            probe(data)
        except MALFORMED:
            continue
        found.strays.append((what, where))
        return
    printable = sum(32 <= b < 127 or b in b"\r\n\t" for b in data[:4096])
    kind = "text without PEM blocks" if printable >= 0.95 * len(data[:4096]) else "binary data"
    kind = "damaged DER or an unknown format" if data[0] == 0x30 else kind  # ASN.1 SEQUENCE
    raise BadInput(f"{where} is not a certificate or key ({kind}): is it the right file?")


def _load_key(found: _Found, where: str, data: bytes, loader: _KeyLoader) -> PrivateKeyTypes:
    """Load a private key, using the passphrase only when the key is encrypted."""
    try:
        return loader(data, None)
    except TypeError:
        pass  # cryptography: "Password was not given but private key is encrypted"
    except MALFORMED as exc:
        raise BadInput(
            f"the private key in {where} is damaged or unreadable; export it again"
        ) from exc
    if found.passphrase is None:
        raise BadInput(
            f"the private key in {where} is encrypted and no passphrase was given: {_HOW_TO_UNLOCK}"
        )
    try:
        key = loader(data, found.passphrase)
    except (*MALFORMED, TypeError) as exc:
        raise BadInput(
            f"could not decrypt the private key in {where}: wrong passphrase (or a damaged key)"
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
        hint = "it is PEM: pass it with --bundle" if b"-----BEGIN" in data else "wrong file?"
        raise BadInput(f"{where} is not a PKCS#12 (.pfx/.p12) file: {hint}")
    given = found.passphrase
    for password in [given, None] if given is not None else [None, b""]:
        try:
            contents = pkcs12.load_pkcs12(data, password)
        except UnsupportedAlgorithm as exc:
            raise BadInput(
                f"{where} uses an obsolete cipher (e.g. RC2): export it again with AES"
            ) from exc
        except (ValueError, TypeError):
            continue
        found.passphrase_used |= given is not None and password is given
        break
    else:
        if given is None:
            raise BadInput(
                f"{where} is a password-protected (or damaged) PKCS#12 file: {_HOW_TO_UNLOCK}"
            )
        raise BadInput(f"could not open {where}: wrong PKCS#12 password (or a damaged file)")
    if contents.key is not None:
        found.add_key(where, contents.key)
    for item in [contents.cert] if contents.cert else []:
        found.add_cert(where, item.certificate)
    for item in contents.additional_certs:
        found.add_cert(where, item.certificate)


def _parse_cert(where: str, cert: x509.Certificate | bytes) -> tuple[x509.Certificate, CertInfo]:
    """Parse a certificate in full now, so that its malformed parts fail here."""
    try:
        parsed = x509.load_der_x509_certificate(cert) if isinstance(cert, bytes) else cert
        return parsed, cert_info(parsed)
    except MALFORMED as exc:
        raise BadInput(
            f"the certificate in {where} is damaged or malformed; copy it again"
        ) from exc


def _find_leaf(found: _Found) -> tuple[x509.Certificate, CertInfo]:
    """The one certificate that is not a CA and issued nothing else in the input."""
    if not found.certs and found.strays:
        what, where = found.strays[0]
        raise BadInput(f"{where} holds {what}, not a certificate: give the one your CA issued")
    if not found.certs:
        raise BadInput("no certificate in the input: give it with --cert, --bundle or --pkcs12")
    found.warnings += [f"ignored {what} in {where}" for what, where in found.strays]
    if len(found.certs) > MAX_CERTIFICATES:
        raise BadInput(
            f"too many certificates in the input ({len(found.certs)}): give one certificate and"
            " its chain, not a CA bundle"
        )
    claimed = {c.issuer for c in found.certs if c.subject != c.issuer}
    leaves = [c for c in found.certs if not found.info(c).is_ca and c.subject not in claimed]
    if not leaves and _self_signed_server(found):
        leaves = found.certs
    if not leaves:
        listed = ", ".join(label(found.info(c)) for c in found.certs)
        raise BadInput(
            f"CA certificate given as the leaf: every certificate in the input is a CA"
            f" ({listed}); give the server certificate your CA issued"
        )
    if len(leaves) > 1:
        count = "two" if len(leaves) == 2 else str(len(leaves))
        listed = ", ".join(label(found.info(c)) for c in leaves)
        raise BadInput(f"{count} leaf certificates in the input ({listed}): upload one at a time")
    return leaves[0], found.info(leaves[0])


def _self_signed_server(found: _Found) -> bool:
    """True for one self-signed certificate given with its own key, made for a server.

    `openssl req -x509` with the default openssl.cnf (v3_ca) marks such a certificate
    CA:TRUE (and no key usage), so the flag alone cannot tell it from a root CA. Alone,
    with its own key, names a server answers to and no keyCertSign usage, it is a server
    certificate; a CA given in place of the leaf it issued comes with that leaf, or
    without its key, or names no host, or says it signs certificates: refused.
    """
    if len(found.certs) != 1 or len(found.keys) != 1:
        return False
    cert = found.certs[0]
    if cert.subject != cert.issuer or not key_matches(cert, found.keys[0][0]):
        return False
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and (
        usage.key_cert_sign or not (usage.digital_signature or usage.key_encipherment)
    ):
        return False  # its key usage says it signs certificates (RFC 5280 §4.2.1.3): a CA
    names = found.info(cert).names
    return bool(names) and all(len(n) <= 253 and _HOST_NAME.fullmatch(n) for n in names)


def _the_key(found: _Found, leaf: x509.Certificate, info: CertInfo) -> PrivateKeyTypes:
    """The single private key, checked against the leaf."""
    if not isinstance(leaf.public_key(), _SUPPORTED):
        raise BadInput(f"unsupported key type {info.key_type} in the certificate: {_KEY_TYPES}")
    if not found.keys:
        public = [where for what, where in found.strays if what == _PUBLIC_KEY]
        hint = f" ({public[0]} holds a public key, not the private key)" if public else ""
        raise BadInput(
            f"no private key in the input{hint}: give it with --key, --bundle or --pkcs12"
        )
    if len(found.keys) > 1:
        places = " and in ".join(where for _, where in found.keys[:2])
        raise BadInput(f"two private keys, in {places}: give only the certificate's own key")
    key = found.keys[0][0]
    if not key_matches(leaf, key):
        owner = next((label(found.info(c)) for c in found.certs if key_matches(c, key)), None)
        raise BadInput(
            f"the private key does not match the certificate {label(info)} (it belongs to"
            f" {owner or 'another certificate'}): give the key made with this certificate's CSR"
        )
    return key


def _build_chain(
    leaf: x509.Certificate, pool: list[x509.Certificate]
) -> tuple[list[x509.Certificate], x509.Certificate | None]:
    """Walk up from the leaf by verified signatures: (intermediates, root in the input)."""
    chain: list[x509.Certificate] = []
    current, root = leaf, None
    while current.subject != current.issuer:
        named = [c for c in pool if c.subject == current.issuer]
        signers = [c for c in named if _issued(current, c)]
        if named and not signers:
            raise BadInput(
                f"chain link does not verify: {name_of(current)} names"
                f" {clean(readable_name(current.issuer))} as its issuer, but that certificate"
                " in the input did not sign it; get the matching chain from your CA"
            )
        if not signers:
            break
        current = min(signers, key=lambda c: c.subject == c.issuer)  # a cross-sign over a root
        pool = [c for c in pool if c is not current]
        if current.subject == current.issuer:
            root = current
        else:
            chain.append(current)
    if current.subject == current.issuer and not _issued(current, current):
        raise BadInput(
            f"chain link does not verify: {name_of(current)} claims to be self-signed but its"
            " signature does not verify"
        )
    for cert in pool:  # other roots of the path are dropped like `root`; anything else refused
        if not (cert.subject == cert.issuer and any(_issued(c, cert) for c in [leaf, *chain])):
            path = " → ".join(name_of(c) for c in [leaf, *chain])
            raise BadInput(
                f"unrelated certificate in the input: {name_of(cert)} is not part of the chain"
                f" {path}; remove it, or upload it separately"
            )
    return chain, root


def _date_warnings(
    found: _Found, info: CertInfo, chain: list[x509.Certificate], now: datetime, allow_expired: bool
) -> list[str]:
    """Refuse an expired leaf (unless allowed); warn about other date problems."""
    notes: list[str] = []
    if now > info.not_after:
        message = f"certificate {label(info)} expired on {info.not_after:{_WHEN}}"
        if not allow_expired:
            raise BadInput(f"{message}: renew it, or pass --allow-expired to store it anyway")
        notes.append(message)
    if now < info.not_before:
        notes.append(
            f"certificate {label(info)} is not yet valid: valid from {info.not_before:{_WHEN}}"
        )
    for issuer in (found.info(c) for c in chain):
        if now > issuer.not_after:
            notes.append(
                f"chain certificate {label(issuer)} expired on {issuer.not_after:{_WHEN}}: get"
                " the current chain from your CA"
            )
    return notes


def _issued(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when `issuer`'s name and key signed `child`."""
    try:
        child.verify_directly_issued_by(issuer)
    except (*MALFORMED, TypeError, InvalidSignature):
        return False
    return True
