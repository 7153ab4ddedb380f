"""Upload material: every accepted format, a catalogue of refusals, and fuzzed input."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certctl.errors import BadInput
from certctl.material import (
    UploadMaterial,
    cert_info,
    cert_info_pem,
    key_matches,
    key_type_of,
    load_upload,
)
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
PASSPHRASE = b"correct horse battery"
NAMES = ("www.example.com", "example.com", "192.0.2.7")


def load(**inputs: Any) -> UploadMaterial:
    """load_upload with every input absent unless given, at NOW."""
    args: dict[str, Any] = dict.fromkeys(("cert", "key", "chain", "bundle", "pkcs12"))
    args.update(passphrase=None, now=NOW)
    args.update(inputs)
    return load_upload(**args)


@lru_cache(maxsize=None)
def leaf(kind: str = "ec256") -> Issued:
    """A leaf under int2 valid around NOW, one per key kind."""
    return make_leaf(*NAMES, key=kind, now=NOW)


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
    assert info.serial == format(issued.cert.serial_number, "x")
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", info.fingerprint_sha256)
    assert info.not_before == NOW - timedelta(hours=1)
    assert info.not_after == NOW - timedelta(hours=1) + timedelta(days=90)
    assert info.not_after.tzinfo is not None
    assert info.is_ca is False
    stored_key = serialization.load_pem_private_key(material.key_pem, None)
    assert key_matches(material.leaf, stored_key)
    assert material.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def _good_inputs() -> list[Any]:
    """(id, inputs) for every accepted format of the ec256 leaf (rsa2048 where noted)."""
    ec, rsa, p = leaf("ec256"), leaf("rsa2048"), pki()
    int2, int1, root = (x.cert for x in (p.int2, p.int1, p.root))
    return [
        ("pem-separate-files", ec, dict(cert=ec.cert_pem(), chain=ec.chain_pem(), key=ec.key_pem())),
        ("chain-appended-to-cert", ec, dict(cert=ec.fullchain_pem(), key=ec.key_pem())),
        ("bundle-key-first", ec, dict(bundle=ec.key_pem() + ec.fullchain_pem())),
        ("bundle-reverse-order", ec, dict(bundle=pem(root, int1, int2, ec.key, ec.cert))),
        ("bundle-shuffled", ec, dict(bundle=pem(int1, ec.cert, root, ec.key, int2))),
        ("chain-reverse-order", ec, dict(cert=ec.cert_pem(), chain=pem(int1, int2), key=ec.key_pem())),
        ("root-included-is-dropped", ec, dict(cert=ec.fullchain_pem(with_root=True), key=ec.key_pem())),
        ("key-inside-cert-file", ec, dict(cert=ec.bundle_pem())),
        ("chain-given-twice", ec, dict(cert=ec.fullchain_pem(), chain=ec.chain_pem(), key=ec.key_pem())),
        ("der-cert-der-key", ec, dict(cert=ec.cert_der(), key=ec.key_der(), chain=ec.chain_pem())),
        ("der-chain-cert", ec, dict(cert=ec.cert_pem(), chain=pem(int1), key=ec.key_pem(), bundle=int2.public_bytes(serialization.Encoding.DER))),
        ("pkcs8-encrypted", ec, dict(cert=ec.fullchain_pem(), key=ec.key_pem(passphrase=PASSPHRASE), passphrase=PASSPHRASE)),
        ("pkcs8-encrypted-der", ec, dict(cert=ec.fullchain_pem(), key=ec.key_der(passphrase=PASSPHRASE), passphrase=PASSPHRASE)),
        ("traditional-ec", ec, dict(cert=ec.fullchain_pem(), key=ec.key_pem(traditional=True))),
        ("traditional-ec-encrypted", ec, dict(cert=ec.fullchain_pem(), key=ec.key_pem(traditional=True, passphrase=PASSPHRASE), passphrase=PASSPHRASE)),
        ("traditional-rsa-encrypted", rsa, dict(cert=rsa.fullchain_pem(), key=rsa.key_pem(traditional=True, passphrase=PASSPHRASE), passphrase=PASSPHRASE)),
        ("pkcs12-no-password", ec, dict(pkcs12=ec.pkcs12())),
        ("pkcs12-password", rsa, dict(pkcs12=rsa.pkcs12(passphrase=PASSPHRASE), passphrase=PASSPHRASE)),
        ("pkcs12-with-root", ec, dict(pkcs12=ec.pkcs12(with_root=True))),
        ("pkcs12-without-key-plus-key", ec, dict(pkcs12=make_pkcs12(ec.cert, None, [int2, int1]), key=ec.key_pem())),
        ("pkcs12-given-as-cert", ec, dict(cert=ec.pkcs12())),
        ("pkcs7-chain", ec, dict(cert=ec.cert_pem(), chain=pkcs7.serialize_certificates([int2, int1], serialization.Encoding.PEM), key=ec.key_pem())),
        ("crlf-line-ends", ec, dict(bundle=ec.bundle_pem().replace(b"\n", b"\r\n"))),
        ("utf8-bom-and-text-around", ec, dict(bundle=b"\xef\xbb\xbfsubject=CN=www\n" + ec.bundle_pem() + b"trailing note\n")),
        ("ec-parameters-block", ec, dict(bundle=b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" + ec.bundle_pem())),
    ]  # fmt: skip


@pytest.mark.parametrize(("issued", "inputs"), [pytest.param(i, x, id=n) for n, i, x in _good_inputs()])
def test_good_input_loads_in_order(issued: Issued, inputs: dict[str, Any]) -> None:
    material = load(**inputs)
    assert material.leaf == issued.cert
    assert subjects(material.chain) == INT2_INT1
    assert material.warnings == []
    assert key_matches(material.leaf, serialization.load_pem_private_key(material.key_pem, None))
    assert material.fullchain_pem() == issued.fullchain_pem()


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
        material = load(**inputs, passphrase=PASSPHRASE)
        assert material.warnings == [
            "a passphrase was given but no input was encrypted; it was ignored"
        ]


def test_self_signed_leaf_warns_and_has_no_chain() -> None:
    issued = self_signed()
    material = load(cert=issued.cert_pem(), key=issued.key_pem(), now=datetime.now(UTC))
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

Inputs = Callable[[], dict[str, Any]]


def _forged_int2() -> x509.Certificate:
    """A CA named like int2 (issued by int1) but with another key: it did not sign the leaf."""
    return make_cert(
        pki().int2.cert.subject, private_key("ec256", 9), issuer=pki().int1, ca=True
    )


def _bad_inputs() -> list[tuple[str, Inputs, str]]:
    """(id, inputs, substring the message must contain)."""
    ec = leaf
    big = b"A" * (1024 * 1024 + 1)
    other_pki = pki(1)
    return [
        ("cert-over-1mib", lambda: dict(cert=big, key=ec().key_pem()), "over 1 MiB"),
        ("pkcs12-over-1mib", lambda: dict(pkcs12=big), "over 1 MiB"),
        ("empty-cert", lambda: dict(cert=b"", key=ec().key_pem()), "--cert input is empty"),
        ("blank-key", lambda: dict(cert=ec().fullchain_pem(), key=b" \n\n"), "--key input is empty"),
        ("binary-garbage", lambda: dict(cert=bytes(range(256)) * 4, key=ec().key_pem()), "not a certificate or key: binary data"),
        ("text-garbage", lambda: dict(cert=b"hello, this is not it\n", key=ec().key_pem()), "not a certificate or key: text"),
        ("truncated-pem", lambda: dict(cert=ec().fullchain_pem()[:300], key=ec().key_pem()), "truncated"),
        ("truncated-key", lambda: dict(cert=ec().fullchain_pem(), key=ec().key_pem()[:-40]), "truncated"),
        ("end-without-begin", lambda: dict(cert=ec().cert_pem().split(b"\n", 1)[1], key=ec().key_pem()), "has no BEGIN line"),
        ("mismatched-labels", lambda: dict(cert=ec().cert_pem().replace(b"END CERTIFICATE", b"END X509 CRL"), key=ec().key_pem()), "ends with END X509 CRL"),
        ("bad-base64", lambda: dict(cert=ec().cert_pem().replace(b"M", b"*", 3), key=ec().key_pem()), "base64"),
        ("damaged-der-in-pem", lambda: dict(cert=b"-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n", key=ec().key_pem()), "damaged or malformed"),
        ("damaged-key", lambda: dict(cert=ec().fullchain_pem(), key=b"-----BEGIN PRIVATE KEY-----\nMIIBAAAA\n-----END PRIVATE KEY-----\n"), "private key in the --key input (block 1, PRIVATE KEY) is damaged"),
        ("unsupported-pem-block", lambda: dict(cert=ec().fullchain_pem(), key=b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"), "unsupported PEM block 'OPENSSH PRIVATE KEY'"),
        ("csr-as-cert", lambda: dict(cert=csr_pem(ec().key, "www.example.com"), key=ec().key_pem()), "certificate signing request (CSR), not a certificate"),
        ("public-key-as-cert", lambda: dict(cert=public_key_pem(ec().key), key=ec().key_pem()), "bare public key, not a certificate"),
        ("public-key-as-key", lambda: dict(cert=ec().fullchain_pem(), key=public_key_pem(ec().key)), "holds a public key, not the private key"),
        ("no-certificate", lambda: dict(key=ec().key_pem()), "no certificate in the input"),
        ("no-private-key", lambda: dict(cert=ec().fullchain_pem()), "no private key in the input"),
        ("two-private-keys", lambda: dict(cert=ec().fullchain_pem(), key=ec().key_pem() + key_bytes(private_key("ec256", 3))), "two private keys"),
        ("two-leaves", lambda: dict(bundle=ec().bundle_pem() + leaf("rsa2048").cert_pem()), "two leaf certificates"),
        ("ca-as-leaf", lambda: dict(cert=pki().int2.cert_pem(), key=pki().int2.key_pem()), "CA certificate given as the leaf"),
        ("only-root", lambda: dict(cert=pki().root.cert_pem(), key=ec().key_pem()), "CA certificate given as the leaf"),
        ("key-mismatch", lambda: dict(cert=ec().fullchain_pem(), key=key_bytes(private_key("ec256", 4))), "does not match the certificate www.example.com"),
        ("key-of-the-intermediate", lambda: dict(cert=ec().fullchain_pem(), key=pki().int2.key_pem()), "(it belongs to Test Int2)"),
        ("encrypted-pkcs8-no-passphrase", lambda: dict(cert=ec().fullchain_pem(), key=ec().key_pem(passphrase=PASSPHRASE)), "is encrypted and no passphrase was given"),
        ("encrypted-traditional-no-passphrase", lambda: dict(cert=ec().fullchain_pem(), key=ec().key_pem(traditional=True, passphrase=PASSPHRASE)), "is encrypted and no passphrase was given"),
        ("encrypted-der-no-passphrase", lambda: dict(cert=ec().fullchain_pem(), key=ec().key_der(passphrase=PASSPHRASE)), "is encrypted and no passphrase was given"),
        ("wrong-passphrase-pkcs8", lambda: dict(cert=ec().fullchain_pem(), key=ec().key_pem(passphrase=PASSPHRASE), passphrase=b"wrong"), "wrong passphrase"),
        ("wrong-passphrase-traditional", lambda: dict(cert=ec().fullchain_pem(), key=ec().key_pem(traditional=True, passphrase=PASSPHRASE), passphrase=b"wrong"), "wrong passphrase"),
        ("pkcs12-wrong-password", lambda: dict(pkcs12=ec().pkcs12(passphrase=PASSPHRASE), passphrase=b"wrong"), "wrong PKCS#12 password"),
        ("pkcs12-no-password", lambda: dict(pkcs12=ec().pkcs12(passphrase=PASSPHRASE)), "password-protected PKCS#12"),
        ("pkcs12-given-pem", lambda: dict(pkcs12=ec().bundle_pem()), "not a PKCS#12 (.pfx/.p12) file: it is PEM"),
        ("pkcs12-garbage", lambda: dict(pkcs12=bytes(range(256))), "not a PKCS#12"),
        ("unrelated-certificate", lambda: dict(bundle=ec().bundle_pem() + other_pki.int1.cert_pem()), "unrelated certificate in the input: Test Int1 1"),
        ("chain-link-does-not-verify", lambda: dict(cert=pem(ec().cert, _forged_int2(), pki().int1.cert), key=ec().key_pem()), "chain link does not verify: www.example.com names Test Int2"),
        ("expired-leaf", lambda: dict(bundle=make_leaf(not_after=NOW - timedelta(seconds=1), now=NOW - timedelta(days=90)).bundle_pem()), "expired on 2026-06-01 11:59 UTC: renew it, or pass --allow-expired"),
        ("missing-intermediate-strict", lambda: dict(cert=ec().cert_pem(), key=ec().key_pem(), strict=True), "missing intermediate: the chain ends at Test Int2"),
        ("unsupported-dsa-key", lambda: dict(cert=ec().fullchain_pem(), key=key_bytes(private_key("dsa"), traditional=True)), "unsupported key type dsa1024"),
        ("unsupported-dsa-certificate", lambda: dict(bundle=pem(make_leaf(key="dsa", now=NOW).cert, *ec().chain, ec().key)), "unsupported key type dsa1024 in the certificate"),
        ("too-many-certificates", lambda: dict(bundle=ec().bundle_pem() + b"".join(make_leaf(f"h{i}.example", now=NOW).cert_pem() for i in range(20))), "too many certificates"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("inputs", "expected"), [pytest.param(i, e, id=n) for n, i, e in _bad_inputs()]
)
def test_bad_input_is_refused_with_a_message_naming_it(inputs: Inputs, expected: str) -> None:
    with pytest.raises(BadInput) as refused:
        load(**inputs())
    message = str(refused.value)
    assert expected in message
    assert "\n" not in message
    assert PASSPHRASE.decode() not in message
    key_body = leaf().key_pem().decode().splitlines()[1]
    assert key_body not in message


def test_the_catalogue_is_large_enough() -> None:
    assert len(_bad_inputs()) >= 25


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


@lru_cache(maxsize=None)
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
    for child, parent in zip(path, path[1:], strict=False):
        child.verify_directly_issued_by(parent)
