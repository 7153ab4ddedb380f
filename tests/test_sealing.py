"""Secrets sealed under the store key (AES-256-GCM envelope) and the store key file."""

from __future__ import annotations

import base64
import errno
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certctl.errors import BadInput, ExitCode, StoreError
from certctl.store import sealing
from certctl.store.sealing import (
    HEADER_SIZE,
    MIN_BLOB_SIZE,
    SealError,
    StoreKey,
    WrongStoreKey,
    generate_key_file,
    is_sealed,
    load_key_file,
    reseal,
    seal,
    sealed_key_id,
    unseal,
)
from test_startup import HEAVY, loaded_modules

import storeview
from conftest import Certctl

OLD = StoreKey.from_secret(bytes(range(32)))
NEW = StoreKey.from_secret(bytes(range(100, 132)))
CONTEXT = "cert:shop:3:privkey"
PEM = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n"
    b"-----END PRIVATE KEY-----\n"
)


def spellings(secret: bytes) -> list[str]:
    """Every way the key could leak into a message: raw, hex, base64 (both alphabets)."""
    return [
        secret.decode("latin-1"),
        secret.hex(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode(),
        base64.b64encode(secret).decode().rstrip("="),
        repr(secret),
    ]


def assert_reveals_nothing(text: str, *keys: StoreKey, plaintext: bytes = PEM) -> None:
    for key in keys:
        for spelling in spellings(key.secret):
            assert spelling not in text
    assert plaintext.decode("latin-1") not in text
    assert "PRIVATE KEY" not in text


# ---- seal / unseal ---------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [b"", b"x", PEM, os.urandom(100_000)])
def test_round_trip(plaintext: bytes) -> None:
    blob = seal(OLD, plaintext, CONTEXT)
    assert unseal(OLD, blob, CONTEXT) == plaintext
    assert unseal([OLD], blob, CONTEXT) == plaintext
    assert len(blob) == MIN_BLOB_SIZE + len(plaintext)  # header, wrapped key, nonce, tag
    assert is_sealed(blob)
    assert sealed_key_id(blob) == OLD.key_id


def test_blob_layout_and_no_plaintext_inside() -> None:
    blob = seal(OLD, PEM, CONTEXT)
    assert blob[:4] == b"CCSL" and blob[4] == 1
    assert blob[5:HEADER_SIZE] == bytes.fromhex(OLD.key_id)
    assert b"PRIVATE KEY" not in blob and OLD.secret not in blob
    assert CONTEXT.encode() not in blob  # bound as associated data, not stored


def test_each_seal_uses_fresh_keys_and_nonces() -> None:
    first, second = seal(OLD, PEM, CONTEXT), seal(OLD, PEM, CONTEXT)
    assert first[:HEADER_SIZE] == second[:HEADER_SIZE]
    assert first[HEADER_SIZE:] != second[HEADER_SIZE:]
    # wrapped data key, data nonce and ciphertext all differ
    assert first[HEADER_SIZE : HEADER_SIZE + 60] != second[HEADER_SIZE : HEADER_SIZE + 60]
    assert first[-len(PEM) - 16 :] != second[-len(PEM) - 16 :]


def test_wrong_key_names_both_ids() -> None:
    blob = seal(OLD, PEM, CONTEXT)
    with pytest.raises(WrongStoreKey) as caught:
        unseal(NEW, blob, CONTEXT)
    assert str(caught.value) == (
        f"{CONTEXT}: sealed with store key {OLD.key_id}, the given key is {NEW.key_id}:"
        " use the key file this store was created with"
    )
    assert caught.value.exit_code == ExitCode.USAGE  # the key file given is the wrong one
    assert isinstance(caught.value, SealError) and isinstance(caught.value, StoreError)
    assert_reveals_nothing(str(caught.value), OLD, NEW)


def test_wrong_keyring_lists_the_given_ids() -> None:
    third = StoreKey.generate()
    with pytest.raises(WrongStoreKey, match=f"the given keys are {NEW.key_id}, {third.key_id}:"):
        unseal([NEW, third], seal(OLD, PEM, CONTEXT), CONTEXT)
    with pytest.raises(WrongStoreKey, match="the given key is none:"):
        unseal([], seal(OLD, PEM, CONTEXT), CONTEXT)


@pytest.mark.parametrize(
    "other",
    ["cert:shop:4:privkey", "cert:blog:3:privkey", "cert:shop:3:pending", "cert:shop:3:privke"],
)
def test_another_context_does_not_open(other: str) -> None:
    blob = seal(OLD, PEM, CONTEXT)
    with pytest.raises(SealError) as caught:
        unseal(OLD, blob, other)
    assert type(caught.value) is SealError
    assert caught.value.exit_code == ExitCode.FAILED
    assert str(caught.value) == (
        f"{other}: the sealed secret is damaged or moved (it does not open here with store key"
        f" {OLD.key_id}); restore it from a backup or re-issue the certificate"
    )
    assert_reveals_nothing(str(caught.value), OLD)


def test_an_empty_context_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="needs a context"):
        seal(OLD, PEM, "")
    with pytest.raises(ValueError, match="needs a context"):
        unseal(OLD, seal(OLD, PEM, CONTEXT), "")


BLOB = seal(OLD, PEM, CONTEXT)


@settings(max_examples=400, deadline=None)
@given(position=st.integers(0, len(BLOB) - 1), mask=st.integers(1, 255))
def test_any_changed_byte_is_refused(position: int, mask: int) -> None:
    tampered = bytearray(BLOB)
    tampered[position] ^= mask
    with pytest.raises(SealError) as caught:
        unseal([OLD, NEW], bytes(tampered), CONTEXT)
    assert_reveals_nothing(str(caught.value), OLD, NEW)


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, len(BLOB) - 1))
def test_a_truncated_blob_is_refused(cut: int) -> None:
    with pytest.raises(SealError) as caught:
        unseal(OLD, BLOB[:cut], CONTEXT)
    assert_reveals_nothing(str(caught.value), OLD)


def test_appended_bytes_are_refused() -> None:
    with pytest.raises(SealError, match="damaged or moved"):
        unseal(OLD, BLOB + b"\0", CONTEXT)


@pytest.mark.parametrize("data", [b"", b"CCSL", PEM, b"CCSL\x01" + b"\0" * 20])
def test_plain_data_is_not_sealed(data: bytes) -> None:
    assert not is_sealed(data)
    with pytest.raises(SealError, match="not sealed data"):
        sealed_key_id(data)
    with pytest.raises(SealError, match=f"^{CONTEXT}: not sealed data"):
        unseal(OLD, data, CONTEXT)


def test_a_newer_format_says_upgrade() -> None:
    newer = BLOB[:4] + b"\x02" + BLOB[5:]
    assert not is_sealed(newer)
    with pytest.raises(SealError, match="format 2, newer than this certctl understands"):
        unseal(OLD, newer, CONTEXT)


# ---- rotation --------------------------------------------------------------------


def test_a_keyring_opens_blobs_of_old_and_new_keys() -> None:
    old_blob, new_blob = seal(OLD, PEM, CONTEXT), seal(NEW, b"other", CONTEXT)
    assert unseal([NEW, OLD], old_blob, CONTEXT) == PEM
    assert unseal([NEW, OLD], new_blob, CONTEXT) == b"other"
    assert unseal((OLD, NEW), old_blob, CONTEXT) == PEM


def test_reseal_moves_a_blob_to_the_new_key() -> None:
    old_blob = seal(OLD, PEM, CONTEXT)
    new_blob = reseal([OLD], NEW, old_blob, CONTEXT)
    assert sealed_key_id(new_blob) == NEW.key_id
    assert unseal(NEW, new_blob, CONTEXT) == PEM
    with pytest.raises(WrongStoreKey):
        unseal(OLD, new_blob, CONTEXT)
    # run again (an interrupted rotation): kept as it is, after checking it opens
    assert reseal(OLD, NEW, new_blob, CONTEXT) == new_blob
    with pytest.raises(SealError, match="damaged or moved"):
        reseal(OLD, NEW, new_blob, "cert:other:1:privkey")


def test_reseal_refuses_what_the_old_keys_do_not_open() -> None:
    third = StoreKey.generate()
    with pytest.raises(WrongStoreKey):
        reseal(third, NEW, seal(OLD, PEM, CONTEXT), CONTEXT)
    with pytest.raises(SealError, match="damaged or moved"):
        reseal(OLD, NEW, seal(OLD, PEM, CONTEXT), "cert:shop:4:privkey")


# ---- StoreKey --------------------------------------------------------------------


def test_store_key_repr_shows_only_the_id() -> None:
    key = StoreKey.generate()
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert key.key_id in text
        assert_reveals_nothing(text, key)
    assert repr(key) == f"StoreKey(key_id='{key.key_id}')"


def test_key_id_is_stable_and_derived() -> None:
    assert OLD.key_id == StoreKey.from_secret(bytes(range(32))).key_id
    assert len(OLD.key_id) == 16 and int(OLD.key_id, 16) >= 0
    assert OLD.key_id != NEW.key_id
    assert OLD.key_id not in OLD.secret.hex()  # not a slice of the key itself


def test_store_key_checks_its_parts() -> None:
    with pytest.raises(ValueError, match="32 bytes, not 31"):
        StoreKey.from_secret(bytes(31))
    with pytest.raises(ValueError, match="does not belong to this key"):
        StoreKey(NEW.key_id, OLD.secret)


# ---- the key file ----------------------------------------------------------------


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_generated_file_is_0600_whatever_the_umask(tmp_path: Path, umask_zero: None) -> None:
    path = tmp_path / "store.key"
    key = generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["store.key"]  # no temp file left behind
    lines = path.read_text().splitlines()
    assert lines[0] == "certctl-store-key 1"
    assert lines[-1] == base64.b64encode(key.secret).decode()
    assert all(line.startswith("#") for line in lines[1:-1])
    assert load_key_file(path) == key


def test_two_generated_keys_differ(tmp_path: Path) -> None:
    assert generate_key_file(tmp_path / "a").secret != generate_key_file(tmp_path / "b").secret


@pytest.mark.parametrize("kind", ["file", "dangling symlink", "symlink"])
def test_an_existing_path_is_never_overwritten(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "store.key"
    target = tmp_path / "elsewhere"
    if kind == "file":
        path.write_bytes(b"precious")
    else:
        if kind == "symlink":
            target.write_bytes(b"precious")
        path.symlink_to(target)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(BadInput) as caught:
        generate_key_file(path)
    assert str(caught.value) == (
        f"store key file {path} already exists; certctl never overwrites a store key:"
        " give another path (remove the old file only if no store uses its key)"
    )
    assert sorted(os.listdir(tmp_path)) == before
    if kind != "dangling symlink":
        assert (tmp_path / ("store.key" if kind == "file" else "elsewhere")).read_bytes() == (
            b"precious"
        )
    else:
        assert not target.exists()


def test_a_file_that_appears_meanwhile_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check and the write race with another writer: the link (no rename) loses."""
    path = tmp_path / "store.key"
    path.write_bytes(b"written by someone else")
    monkeypatch.setattr(sealing.os.path, "lexists", lambda p: False)  # the check missed it
    with pytest.raises(BadInput, match="already exists"):
        generate_key_file(path)
    assert path.read_bytes() == b"written by someone else"
    assert os.listdir(tmp_path) == ["store.key"]


def test_without_hard_links_the_file_is_created_exclusively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_zero: None
) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted", src, None, dst)

    monkeypatch.setattr(sealing.os, "link", no_link)
    path = tmp_path / "store.key"
    key = generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["store.key"]
    assert load_key_file(path) == key


def test_the_directory_must_exist(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "store.key"
    with pytest.raises(BadInput) as caught:
        generate_key_file(path)
    assert str(caught.value) == (
        f"store key file {path}: directory {path.parent} does not exist; create it first"
        " (mkdir -p -m 700)"
    )
    assert not path.parent.exists()


def write_key_file(path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)
    return path


GOOD_LINE = base64.b64encode(NEW.secret).decode()


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_private_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    path = write_key_file(tmp_path / "k", f"certctl-store-key 1\n{GOOD_LINE}\n", mode)
    assert load_key_file(path) == NEW


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666, 0o601, 0o610])
def test_loose_modes_are_refused_as_ssh_does(tmp_path: Path, mode: int) -> None:
    path = write_key_file(tmp_path / "k", f"certctl-store-key 1\n{GOOD_LINE}\n", mode)
    with pytest.raises(BadInput) as caught:
        load_key_file(path)
    assert str(caught.value) == (
        f"store key file {path} has mode {mode:04o}: a store key must be readable by its"
        f" owner only; run 'chmod 600 {path}'"
    )
    assert_reveals_nothing(str(caught.value), NEW)


def test_a_foreign_owner_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_key_file(tmp_path / "k", f"certctl-store-key 1\n{GOOD_LINE}\n")
    if os.geteuid() == 0:
        os.chown(path, 12345, -1)
        me = 0
    else:  # nobody else's file can be made here: be someone else instead
        me = os.geteuid() + 1
        monkeypatch.setattr(sealing.os, "geteuid", lambda: me)
    owner = path.stat().st_uid
    with pytest.raises(BadInput) as caught:
        load_key_file(path)
    assert str(caught.value) == (
        f"store key file {path} is owned by uid {owner}, not by you (uid {me}) or root;"
        " chown it to the user that runs certctl"
    )


def test_a_symlink_is_followed_and_its_target_checked(tmp_path: Path) -> None:
    target = write_key_file(tmp_path / "real", f"certctl-store-key 1\n{GOOD_LINE}\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert load_key_file(link) == NEW
    target.chmod(0o644)
    with pytest.raises(BadInput, match="has mode 0644"):
        load_key_file(link)


MALFORMED = {
    "empty": ("", "is not a certctl store key file (its first line must be"),
    "another format": ("PRIVATE KEY\n" + GOOD_LINE + "\n", "is not a certctl store key file"),
    "newer format": (f"certctl-store-key 2\n{GOOD_LINE}\n", "format is newer than this"),
    "no key line": ("certctl-store-key 1\n# nothing\n\n", "holds 0; restore it"),
    "two key lines": (f"certctl-store-key 1\n{GOOD_LINE}\n{GOOD_LINE}\n", "holds 2;"),
    "not base64": ("certctl-store-key 1\n" + GOOD_LINE[:-2] + "!=\n", "is not base64"),
    "urlsafe alphabet": (
        "certctl-store-key 1\n" + base64.urlsafe_b64encode(b"\xfb" * 32).decode() + "\n",
        "is not base64",
    ),
    "short key": (
        "certctl-store-key 1\n" + base64.b64encode(NEW.secret[:31]).decode() + "\n",
        "the key is 31 bytes, a store key is 32",
    ),
    "long key": (
        "certctl-store-key 1\n" + base64.b64encode(NEW.secret * 2).decode() + "\n",
        "the key is 64 bytes, a store key is 32",
    ),
    "binary": (b"certctl-store-key 1\n" + NEW.secret + b"\n", "(not text)"),
    "too large": ("certctl-store-key 1\n" + "#" * 5000 + "\n" + GOOD_LINE, "(too large)"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_are_refused_without_quoting_them(tmp_path: Path, case: str) -> None:
    content, expected = MALFORMED[case]
    path = write_key_file(tmp_path / "k", content)
    with pytest.raises(BadInput) as caught:
        load_key_file(path)
    message = str(caught.value)
    assert message.startswith(f"store key file {path}")
    assert expected in message
    assert "\n" not in message
    assert_reveals_nothing(message, NEW)
    assert GOOD_LINE[:12] not in message and GOOD_LINE[-12:] not in message


def test_comments_and_blank_lines_are_ignored(tmp_path: Path) -> None:
    text = f"certctl-store-key 1\r\n\n# made by hand\n  {GOOD_LINE}  \r\n# end\n"
    assert load_key_file(write_key_file(tmp_path / "k", text)) == NEW


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as caught:
        load_key_file(tmp_path / "nope")
    assert str(caught.value) == (
        f"store key file {tmp_path / 'nope'} does not exist; create one with"
        " 'certctl store init-key FILE'"
    )
    assert caught.value.exit_code == ExitCode.USAGE


def test_not_a_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(BadInput, match="is not a regular file"):
        load_key_file(fifo)  # opened without blocking for a writer
    with pytest.raises(BadInput, match="is not a regular file"):
        load_key_file(tmp_path)


def test_cryptography_is_not_imported_with_the_module() -> None:
    import subprocess
    import sys

    probe = "import sys, certctl.store.sealing; print('cryptography' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.stdout == "False\n", proc.stderr


# ---- certctl store init-key -------------------------------------------------------


def test_init_key_writes_the_file_and_prints_its_id(offline: Certctl, tmp_path: Path) -> None:
    path = tmp_path / "new.key"  # (store.key: the postgresql runner's own key)
    proc = offline.run("store", "init-key", str(path))
    assert proc.returncode == 0, proc.stderr
    key = load_key_file(path)
    assert proc.stdout == (
        f"store key {key.key_id} written to {path} (mode 0600)\n"
        "keep a backup of it apart from the database: without it the keys are lost\n"
    )
    assert proc.stderr == ""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert_reveals_nothing(proc.stdout + proc.stderr, key)
    assert not storeview.exists(offline)  # the store itself is not touched


def test_init_key_json(offline: Certctl, tmp_path: Path) -> None:
    path = tmp_path / "new.key"
    proc = offline.run("store", "init-key", str(path), "--json", "--store", offline.location)
    assert proc.returncode == 0, proc.stderr
    key = load_key_file(path)
    assert json.loads(proc.stdout) == {"path": str(path), "key_id": key.key_id}
    assert proc.stderr == ""
    assert_reveals_nothing(proc.stdout, key)


def test_init_key_relative_path_prints_it_absolute(offline: Certctl, tmp_path: Path) -> None:
    proc = offline.run("store", "init-key", "k", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["path"] == str(tmp_path / "k")


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_init_key_refuses_an_existing_file(
    offline: Certctl, tmp_path: Path, json_flag: list[str]
) -> None:
    path = write_key_file(tmp_path / "store.key", f"certctl-store-key 1\n{GOOD_LINE}\n")
    proc = offline.run("store", "init-key", str(path), *json_flag)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        f"error: store key file {path} already exists; certctl never overwrites a store key:"
        " give another path (remove the old file only if no store uses its key)\n"
    )
    assert load_key_file(path) == NEW
    assert os.listdir(tmp_path) == ["store.key"]


def test_init_key_in_a_missing_directory(offline: Certctl, tmp_path: Path) -> None:
    proc = offline.run("store", "init-key", str(tmp_path / "no" / "k"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: store key file ") and proc.stderr.count("\n") == 1
    assert "does not exist; create it first" in proc.stderr


def test_init_key_in_process(offline: Certctl, tmp_path: Path) -> None:
    result = offline.invoke("store", "init-key", str(tmp_path / "k"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["key_id"] == load_key_file(tmp_path / "k").key_id


def test_init_key_loads_neither_the_acme_stack_nor_cryptography(tmp_path: Path) -> None:
    modules = loaded_modules(tmp_path / "store", "store", "init-key", str(tmp_path / "k"))
    assert (tmp_path / "k").is_file()
    assert not [m for m in (*HEAVY, "cryptography") if m in modules]
