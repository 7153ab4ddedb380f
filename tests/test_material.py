"""Upload material: every accepted format, a catalogue of refusals, and fuzzed input."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certctl.errors import BadInput
from certctl.pki.certinfo import cert_info, key_matches, key_type_of
from certctl.pki.material import UploadMaterial, cert_info_pem, load_upload

from certfactory import (
    Issued,
    csr_pem,
    key_bytes,
    make_cert,
    make_leaf,
    make_pkcs12,
    name,
    pem,
    pki,
    private_key,
    public_key_pem,
    self_signed,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PW = b"correct horse battery"
NAMES = ("www.example.com", "example.com", "192.0.2.7")
PEM, DER = serialization.Encoding.PEM, serialization.Encoding.DER
Inputs = Callable[[], dict[str, Any]]


def load(**inputs: Any) -> UploadMaterial:
    """load_upload with every input absent unless given, at NOW."""
    args: dict[str, Any] = dict.fromkeys(("cert", "key", "chain", "bundle", "pkcs12"))
    args.update(passphrase=None, now=NOW)
    args.update(inputs)
    return load_upload(**args)


def leaf(kind: str = "ec256") -> Issued:
    """A leaf under int2 valid around NOW, one per key kind."""
    return _leaf(kind)


@cache
def _leaf(kind: str) -> Issued:
    """The cache behind leaf(): one key for leaf() and leaf("ec256")."""
    return make_leaf(*NAMES, key=kind, now=NOW)


def ec() -> Issued:
    """The usual ECDSA P-256 leaf."""
    return leaf("ec256")


def key(*, passphrase: bytes | None = None, traditional: bool = False) -> bytes:
    """The usual leaf's key as PEM."""
    return ec().key_pem(passphrase=passphrase, traditional=traditional)


def fullchain() -> bytes:
    """The usual leaf with int2 and int1."""
    return ec().fullchain_pem()


def chain() -> bytes:
    """int2 then int1."""
    return ec().chain_pem()


def int1() -> x509.Certificate:
    """The first intermediate (issued by the root)."""
    return pki().int1.cert


def int2() -> x509.Certificate:
    """The second intermediate (issued by int1), the leaves' issuer."""
    return pki().int2.cert


def root() -> x509.Certificate:
    """The self-signed root."""
    return pki().root.cert


def _expired() -> Issued:
    """A leaf that expired a second before NOW."""
    return make_leaf(not_after=NOW - timedelta(seconds=1))


def _dsa_leaf() -> x509.Certificate:
    """A leaf certifying a DSA key."""
    return make_leaf(key="dsa", now=NOW).cert


def _many_leaves(count: int) -> bytes:
    """Distinct leaves as PEM, to overflow the certificate limit."""
    return b"".join(make_leaf(f"h{i}.example", now=NOW).cert_pem() for i in range(count))


def subjects(certs: list[x509.Certificate]) -> list[str]:
    """Readable subjects, to compare chains."""
    return [c.subject.rfc4514_string() for c in certs]


INT2_INT1 = ["CN=Test Int2,O=certfactory", "CN=Test Int1,O=certfactory"]


# --- good inputs ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ec256", "ec384", "rsa2048", "ed25519", "ed448"])
def test_each_key_type_loads_with_its_info(kind: str) -> None:
    issued = leaf(kind)
    material = load(cert=issued.fullchain_pem(), key=issued.key_pem())
    assert material.leaf == issued.cert
    assert subjects(material.chain) == INT2_INT1
    assert material.warnings == []
    info = material.info
    assert info.key_type == kind
    assert info.names == list(NAMES)
    assert info.subject_cn == "www.example.com"
    assert info.issuer == "Test Int2"
    assert info.serial == format(issued.cert.serial_number, "X").zfill(
        2 * ((issued.cert.serial_number.bit_length() + 7) // 8)
    )
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", info.fingerprint_sha256)
    assert info.not_before == NOW - timedelta(hours=1)
    assert info.not_after == NOW - timedelta(hours=1) + timedelta(days=90)
    assert info.not_after.tzinfo is not None
    assert info.is_ca is False
    stored_key = serialization.load_pem_private_key(material.key_pem, None)
    assert key_matches(material.leaf, stored_key)
    assert material.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def _good(case_id: str, inputs: Inputs, kind: str = "ec256") -> Any:
    """One accepted input of the leaf of `kind`."""
    return pytest.param(kind, inputs, id=case_id)


def _p12_without_key() -> bytes:
    """A PKCS#12 holding only certificates."""
    return make_pkcs12(leaf().cert, None, [pki().int2.cert, pki().int1.cert])


def _pkcs7_chain() -> bytes:
    """The intermediates as a PEM PKCS#7 (.p7b) bundle."""
    return pkcs7.serialize_certificates([pki().int2.cert, pki().int1.cert], PEM)


EC_PARAMETERS = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
GOOD = [
    _good("pem-files", lambda: dict(cert=ec().cert_pem(), chain=ec().chain_pem(), key=key())),
    _good("chain-appended-to-cert", lambda: dict(cert=ec().fullchain_pem(), key=key())),
    _good("bundle-key-first", lambda: dict(bundle=key() + ec().fullchain_pem())),
    _good(
        "bundle-reverse-order",
        lambda: dict(bundle=pem(root(), int1(), int2(), ec().key, ec().cert)),
    ),
    _good("bundle-shuffled", lambda: dict(bundle=pem(int1(), ec().cert, root(), ec().key, int2()))),
    _good(
        "chain-reversed", lambda: dict(cert=ec().cert_pem(), chain=pem(int1(), int2()), key=key())
    ),
    _good("root-dropped", lambda: dict(cert=ec().fullchain_pem(with_root=True), key=key())),
    _good("key-in-cert-file", lambda: dict(cert=ec().bundle_pem())),
    _good(
        "chain-twice", lambda: dict(cert=ec().fullchain_pem(), chain=ec().chain_pem(), key=key())
    ),
    _good(
        "der-cert-der-key", lambda: dict(cert=ec().cert_der(), key=ec().key_der(), chain=chain())
    ),
    _good("der-chain-cert", lambda: dict(bundle=ec().bundle_pem(), chain=int2().public_bytes(DER))),
    _good("pkcs8-encrypted", lambda: dict(cert=fullchain(), key=key(passphrase=PW), passphrase=PW)),
    _good(
        "pkcs8-der-encrypted",
        lambda: dict(cert=fullchain(), key=ec().key_der(passphrase=PW), passphrase=PW),
    ),
    _good("traditional-ec", lambda: dict(cert=fullchain(), key=key(traditional=True))),
    _good(
        "traditional-ec-encrypted",
        lambda: dict(cert=fullchain(), key=key(traditional=True, passphrase=PW), passphrase=PW),
    ),
    _good(
        "traditional-rsa-encrypted",
        lambda: dict(
            cert=leaf("rsa2048").fullchain_pem(),
            key=leaf("rsa2048").key_pem(traditional=True, passphrase=PW),
            passphrase=PW,
        ),
        "rsa2048",
    ),
    _good("pkcs12", lambda: dict(pkcs12=ec().pkcs12())),
    _good(
        "pkcs12-password",
        lambda: dict(pkcs12=leaf("rsa2048").pkcs12(passphrase=PW), passphrase=PW),
        "rsa2048",
    ),
    _good("pkcs12-with-root", lambda: dict(pkcs12=ec().pkcs12(with_root=True))),
    _good("pkcs12-without-key", lambda: dict(pkcs12=_p12_without_key(), key=key())),
    _good("pkcs12-given-as-cert", lambda: dict(cert=ec().pkcs12())),
    _good("pkcs7-chain", lambda: dict(cert=ec().cert_pem(), chain=_pkcs7_chain(), key=key())),
    _good("crlf", lambda: dict(bundle=ec().bundle_pem().replace(b"\n", b"\r\n"))),
    _good(
        "bom-and-text", lambda: dict(bundle=b"\xef\xbb\xbfsubject=x\n" + ec().bundle_pem() + b"end")
    ),
    _good("ec-parameters", lambda: dict(bundle=EC_PARAMETERS + ec().bundle_pem())),
]


@pytest.mark.parametrize(("kind", "inputs"), GOOD)
def test_good_input_loads_in_order(kind: str, inputs: Inputs) -> None:
    issued = leaf(kind)
    material = load(**inputs())
    assert material.leaf == issued.cert
    assert subjects(material.chain) == INT2_INT1
    assert material.warnings == []
    assert key_matches(material.leaf, serialization.load_pem_private_key(material.key_pem, None))
    assert material.fullchain_pem() == issued.fullchain_pem()


def test_der_holding_crlf_bytes_is_read_as_is() -> None:
    # a serial holding CR LF bytes puts them in the DER for sure (no search over random leaves)
    issued = make_leaf("crlf.example", now=NOW, serial=0x7F0D0A0D0A1122334455)
    assert b"\r\n" in issued.cert_der()
    material = load(cert=issued.cert_der(), chain=chain(), key=issued.key_pem())
    assert material.leaf == issued.cert


def test_utf16_pem_from_powershell_is_read() -> None:
    bundle = ec().bundle_pem().decode().replace("\n", "\r\n").encode("utf-16")
    assert load(bundle=bundle).leaf == ec().cert


def test_cross_signed_intermediate_is_kept_and_its_self_signed_twin_dropped() -> None:
    p = pki()
    twin = make_cert(p.int1.cert.subject, p.int1.key, ca=True)  # int1's key, self-signed
    material = load(bundle=ec().bundle_pem() + pem(twin))
    assert subjects(material.chain) == INT2_INT1
    assert material.chain[1] == int1()
    assert material.warnings == []


def test_factory_writes_files_and_makes_short_lived_leaves(tmp_path: Path) -> None:
    paths = ec().write(tmp_path / "site", passphrase=PW)
    assert sorted(paths) == ["cert", "chain", "fullchain", "key"]
    assert paths["fullchain"].read_bytes() == fullchain()
    assert b"ENCRYPTED PRIVATE KEY" in paths["key"].read_bytes()
    short = make_leaf(days=10, not_after=NOW + timedelta(days=3))
    assert short.cert.not_valid_before_utc == NOW - timedelta(days=7)
    assert load(bundle=short.bundle_pem()).info.not_after == NOW + timedelta(days=3)


def test_pem_outputs_and_repr_hide_the_key() -> None:
    issued = leaf()
    material = load(bundle=issued.bundle_pem())
    assert material.cert_pem() == issued.cert_pem()
    assert material.chain_pem() == issued.chain_pem()
    assert material.fullchain_pem() == issued.cert_pem() + issued.chain_pem()
    assert b"ENCRYPTED" not in material.key_pem
    assert "PRIVATE" not in repr(material)


# --- warnings ------------------------------------------------------------------------


def test_leaf_alone_warns_missing_intermediate() -> None:
    issued = leaf()
    material = load(cert=issued.cert_pem(), key=issued.key_pem())
    assert material.chain == []
    assert material.warnings == [
        "missing intermediate: the chain ends at Test Int2 which is not in the input; browsers"
        " without it cached may fail — add the intermediate with --chain"
    ]


def test_with_roots_a_gap_above_the_given_intermediate_is_found() -> None:
    issued, root = leaf(), pki().root.cert
    gap = load(cert=pem(issued.cert, pki().int2.cert), key=issued.key_pem(), roots=[root])
    assert [w.split(";")[0] for w in gap.warnings] == [
        "missing intermediate: the chain ends at Test Int1 which is not in the input"
    ]
    complete = load(cert=issued.fullchain_pem(), key=issued.key_pem(), roots=[root])
    assert complete.warnings == []


def test_without_roots_a_chain_with_an_intermediate_is_taken_as_complete() -> None:
    issued = leaf()
    material = load(cert=pem(issued.cert, pki().int2.cert), key=issued.key_pem())
    assert material.warnings == []


def test_expired_leaf_allowed_is_a_warning() -> None:
    issued = make_leaf(not_after=NOW - timedelta(days=3), not_before=NOW - timedelta(days=93))
    material = load(bundle=issued.bundle_pem(), allow_expired=True)
    assert material.warnings == ["certificate www.example.com expired on 2026-05-29 12:00 UTC"]


def test_not_yet_valid_leaf_warns() -> None:
    issued = make_leaf(not_before=NOW + timedelta(days=1), days=10)
    material = load(bundle=issued.bundle_pem())
    assert material.warnings == [
        "certificate www.example.com is not yet valid: valid from 2026-06-02 12:00 UTC"
    ]


def test_expired_chain_certificate_warns() -> None:
    p = pki()
    old_key = private_key("ec256", 7)
    old_int = make_cert(
        name("Old Int", "certfactory"),
        old_key,
        issuer=p.int1,
        ca=True,
        not_before=NOW - timedelta(days=400),
        not_after=NOW - timedelta(days=1),
    )
    issued = make_leaf(issuer=Issued(old_int, old_key, (p.int1.cert,), p.root.cert), now=NOW)
    material = load(bundle=issued.bundle_pem())
    assert subjects(material.chain) == ["CN=Old Int,O=certfactory", "CN=Test Int1,O=certfactory"]
    assert material.warnings == [
        "chain certificate Old Int expired on 2026-05-31 12:00 UTC: get the current chain from"
        " your CA"
    ]


def test_superfluous_passphrase_is_ignored_with_a_warning() -> None:
    issued = leaf()
    for inputs in (dict(bundle=issued.bundle_pem()), dict(pkcs12=issued.pkcs12())):
        material = load(**inputs, passphrase=PW)
        assert material.warnings == [
            "a passphrase was given but no input was encrypted; it was ignored"
        ]


def test_self_signed_leaf_warns_and_has_no_chain() -> None:
    issued = self_signed(now=NOW)
    material = load(cert=issued.cert_pem(), key=issued.key_pem())
    assert material.chain == []
    assert [w.split(":")[0] for w in material.warnings] == ["self-signed certificate"]


def test_csr_beside_the_certificate_is_ignored_with_a_warning() -> None:
    issued = leaf()
    material = load(bundle=issued.bundle_pem() + csr_pem(issued.key, "www.example.com"))
    assert material.warnings == [
        "ignored a certificate signing request (CSR) in the --bundle input (block 5,"
        " CERTIFICATE REQUEST)"
    ]


def test_weak_rsa_key_warns() -> None:
    issued = make_leaf(key="rsa1024", now=NOW)
    material = load(bundle=issued.bundle_pem())
    assert material.warnings == ["weak key: rsa1024; browsers refuse RSA keys under 2048 bits"]


# --- the catalogue of refusals -------------------------------------------------------


def _forged_int2() -> x509.Certificate:
    """A CA named like int2 (issued by int1) but with another key: it did not sign the leaf."""
    return make_cert(pki().int2.cert.subject, private_key("ec256", 9), issuer=pki().int1, ca=True)


def _bad(case_id: str, inputs: Inputs, expected: str) -> Any:
    """One refused input and a substring its message must contain."""
    return pytest.param(inputs, expected, id=case_id)


BIG = b"A" * (1024 * 1024 + 1)
GARBAGE = bytes(range(256)) * 4
CRL = b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"
DAMAGED_CERT = b"-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n"
DAMAGED_KEY = b"-----BEGIN PRIVATE KEY-----\nMIIBAAAA\n-----END PRIVATE KEY-----\n"
BAD = [
    _bad("cert-over-1mib", lambda: dict(cert=BIG, key=key()), "--cert input is over 1 MiB"),
    _bad("pkcs12-over-1mib", lambda: dict(pkcs12=BIG), "--pkcs12 input is over 1 MiB"),
    _bad("empty-cert", lambda: dict(cert=b"", key=key()), "--cert input is empty"),
    _bad("blank-key", lambda: dict(cert=fullchain(), key=b" \n\n"), "--key input is empty"),
    _bad(
        "binary-garbage", lambda: dict(cert=GARBAGE, key=key()), "not a certificate or key (binary"
    ),
    _bad(
        "text-garbage", lambda: dict(cert=b"hello\n", key=key()), "not a certificate or key (text"
    ),
    _bad(
        "truncated-pem",
        lambda: dict(cert=fullchain()[:300], key=key()),
        "--cert input is truncated",
    ),
    _bad(
        "truncated-key", lambda: dict(cert=fullchain(), key=key()[:-40]), "--key input is truncated"
    ),
    _bad("end-without-begin", lambda: dict(cert=fullchain()[30:], key=key()), "has no BEGIN line"),
    _bad(
        "mismatched-labels",
        lambda: dict(cert=fullchain().replace(b"END CERT", b"END X509 CRL", 1), key=key()),
        "BEGIN CERTIFICATE ends with END X509 CRL",
    ),
    _bad(
        "bad-base64",
        lambda: dict(cert=fullchain().replace(b"M", b"*", 3), key=key()),
        "invalid base64",
    ),
    _bad("damaged-der-in-pem", lambda: dict(cert=DAMAGED_CERT, key=key()), "damaged or malformed"),
    _bad(
        "damaged-key",
        lambda: dict(cert=fullchain(), key=DAMAGED_KEY),
        "key in the --key input (block 1, PRIVATE KEY) is damaged",
    ),
    _bad(
        "unsupported-pem-block",
        lambda: dict(cert=fullchain() + CRL, key=key()),
        "unsupported PEM block X509 CRL",
    ),
    _bad(
        "csr-as-cert",
        lambda: dict(cert=csr_pem(ec().key, "x.example"), key=key()),
        "certificate signing request (CSR), not a certificate",
    ),
    _bad(
        "public-key-as-cert",
        lambda: dict(cert=public_key_pem(ec().key), key=key()),
        "a bare public key, not a certificate",
    ),
    _bad(
        "public-key-as-key",
        lambda: dict(cert=fullchain(), key=public_key_pem(ec().key)),
        "holds a public key, not the private key",
    ),
    _bad("no-certificate", lambda: dict(key=key()), "no certificate in the input"),
    _bad("no-private-key", lambda: dict(cert=fullchain()), "no private key in the input"),
    _bad(
        "two-private-keys",
        lambda: dict(cert=fullchain(), key=key() + key_bytes(private_key("ec256", 3))),
        "two private keys",
    ),
    _bad(
        "two-leaves",
        lambda: dict(bundle=ec().bundle_pem() + leaf("rsa2048").cert_pem()),
        "two leaf certificates",
    ),
    _bad(
        "ca-as-leaf",
        lambda: dict(cert=pki().int2.cert_pem(), key=pki().int2.key_pem()),
        "CA certificate given as the leaf",
    ),
    _bad(
        "only-root",
        lambda: dict(cert=pki().root.cert_pem(), key=key()),
        "CA certificate given as the leaf",
    ),
    _bad(
        "key-mismatch",
        lambda: dict(cert=fullchain(), key=key_bytes(private_key("ec256", 4))),
        "does not match the certificate www.example.com",
    ),
    _bad(
        "key-of-the-intermediate",
        lambda: dict(cert=fullchain(), key=pki().int2.key_pem()),
        "(it belongs to Test Int2)",
    ),
    _bad(
        "pkcs8-no-passphrase",
        lambda: dict(cert=fullchain(), key=key(passphrase=PW)),
        "is encrypted and no passphrase was given",
    ),
    _bad(
        "traditional-no-passphrase",
        lambda: dict(cert=fullchain(), key=key(traditional=True, passphrase=PW)),
        "is encrypted and no passphrase",
    ),
    _bad(
        "der-key-no-passphrase",
        lambda: dict(cert=fullchain(), key=ec().key_der(passphrase=PW)),
        "is encrypted and no passphrase",
    ),
    _bad(
        "wrong-passphrase-pkcs8",
        lambda: dict(cert=fullchain(), key=key(passphrase=PW), passphrase=b"no"),
        "wrong passphrase",
    ),
    _bad(
        "wrong-passphrase-traditional",
        lambda: dict(cert=fullchain(), key=key(traditional=True, passphrase=PW), passphrase=b"no"),
        "wrong passphrase",
    ),
    _bad(
        "pkcs12-wrong-password",
        lambda: dict(pkcs12=ec().pkcs12(passphrase=PW), passphrase=b"no"),
        "wrong PKCS#12 password",
    ),
    _bad(
        "pkcs12-no-password",
        lambda: dict(pkcs12=ec().pkcs12(passphrase=PW)),
        "password-protected (or damaged) PKCS#12 file: give it with --passphrase-env",
    ),
    _bad(
        "pkcs12-given-pem",
        lambda: dict(pkcs12=ec().bundle_pem()),
        "not a PKCS#12 (.pfx/.p12) file: it is PEM",
    ),
    _bad("pkcs12-garbage", lambda: dict(pkcs12=GARBAGE), "not a PKCS#12"),
    _bad(
        "unrelated-certificate",
        lambda: dict(bundle=ec().bundle_pem() + pki(1).int1.cert_pem()),
        "unrelated certificate in the input: Test Int1 1",
    ),
    _bad(
        "chain-link-does-not-verify",
        lambda: dict(cert=pem(ec().cert, _forged_int2(), int1()), key=key()),
        "chain link does not verify: www.example.com names Test Int2",
    ),
    _bad(
        "expired-leaf",
        lambda: dict(bundle=_expired().bundle_pem()),
        "expired on 2026-06-01 11:59 UTC: renew it, or pass --allow-expired",
    ),
    _bad(
        "missing-intermediate-strict",
        lambda: dict(cert=ec().cert_pem(), key=key(), strict=True),
        "missing intermediate: the chain ends at Test Int2",
    ),
    _bad(
        "unsupported-dsa-key",
        lambda: dict(cert=fullchain(), key=key_bytes(private_key("dsa"), traditional=True)),
        "unsupported key type dsa1024",
    ),
    _bad(
        "unsupported-dsa-certificate",
        lambda: dict(bundle=pem(_dsa_leaf(), *ec().chain, ec().key)),
        "unsupported key type dsa1024 in the certificate",
    ),
    _bad(
        "too-many-certificates",
        lambda: dict(bundle=ec().bundle_pem() + _many_leaves(20)),
        "too many certificates",
    ),
]


@pytest.mark.parametrize(("inputs", "expected"), BAD)
def test_bad_input_is_refused_with_a_message_naming_it(inputs: Inputs, expected: str) -> None:
    with pytest.raises(BadInput) as refused:
        load(**inputs())
    message = str(refused.value)
    assert expected in message
    assert "\n" not in message
    assert PW.decode() not in message
    key_body = leaf().key_pem().decode().splitlines()[1]
    assert key_body not in message


def test_the_catalogue_is_large_enough() -> None:
    assert len(BAD) >= 25


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        load(bundle=leaf().bundle_pem(), now=datetime(2026, 6, 1))


# --- the small public helpers --------------------------------------------------------


def test_cert_info_pem_reads_the_first_certificate() -> None:
    issued = leaf("rsa2048")
    info = cert_info_pem(issued.fullchain_pem())
    assert info == cert_info(issued.cert)
    assert info.key_type == "rsa2048"
    assert cert_info_pem(pki().int1.cert_pem()).is_ca is True
    with pytest.raises(BadInput, match="no certificate"):
        cert_info_pem(issued.key_pem())


def test_names_fall_back_to_the_common_name() -> None:
    bare = make_cert(name("legacy.example.com"), private_key(), issuer=pki().int2)
    assert cert_info(bare).names == ["legacy.example.com"]
    assert cert_info(pki().root.cert).issuer == "Test Root CA"


@pytest.mark.parametrize("kind", ["ec256", "ec384", "rsa2048", "ed25519", "ed448", "dsa"])
def test_key_type_of(kind: str) -> None:
    expected = "dsa1024" if kind == "dsa" else kind
    assert key_type_of(private_key(kind).public_key()) == expected


def test_key_matches() -> None:
    assert key_matches(leaf("ed25519").cert, leaf("ed25519").key)
    assert not key_matches(leaf("ed25519").cert, leaf("ec256").key)
    assert not key_matches(leaf("rsa2048").cert, private_key("rsa2048", 5))


# --- property: mutated input is either accepted whole or refused --------------------


@cache
def _seeds() -> dict[str, dict[str, bytes]]:
    """Valid inputs to mutate; the mutated one is named `target`."""
    ec, rsa = leaf(), leaf("rsa2048")
    return {
        "bundle": dict(bundle=pem(pki().int1.cert, ec.key, ec.cert, pki().int2.cert)),
        "der-cert": dict(cert=rsa.cert_der(), chain=rsa.chain_pem(), key=rsa.key_pem()),
        "pem-key": dict(cert=ec.fullchain_pem(), key=ec.key_pem(traditional=True)),
        "der-key": dict(cert=ec.fullchain_pem(), key=ec.key_der()),
    }


_TARGET = {"bundle": "bundle", "der-cert": "cert", "pem-key": "key", "der-key": "key"}


@st.composite
def mutated_inputs(draw: st.DrawFn) -> dict[str, bytes]:
    """A valid input with a few bit flips, truncations and byte insertions."""
    seed = draw(st.sampled_from(sorted(_TARGET)))
    inputs = dict(_seeds()[seed])
    data = bytearray(inputs[_TARGET[seed]])
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, max(len(data) - 1, 0)))
        operation = draw(st.sampled_from(["flip", "truncate", "cut", "insert"]))
        if operation == "flip" and data:
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif operation == "truncate":
            del data[where:]
        elif operation == "cut":
            del data[where : where + draw(st.integers(1, 64))]
        else:
            data[where:where] = draw(st.binary(min_size=1, max_size=16))
    inputs[_TARGET[seed]] = bytes(data)
    return inputs


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_inputs())
def test_mutated_input_is_loaded_whole_or_refused(inputs: dict[str, bytes]) -> None:
    try:
        material = load(**inputs)
    except BadInput as refused:
        assert str(refused) and "\n" not in str(refused)
        return
    key = serialization.load_pem_private_key(material.key_pem, None)
    assert key_matches(material.leaf, key)
    path = [material.leaf, *material.chain]
    for child, parent in itertools.pairwise(path):
        child.verify_directly_issued_by(parent)
