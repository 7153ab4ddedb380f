"""Secrets sealed at rest: AES-256-GCM envelope encryption under a store key file.

A shared store (PostgreSQL) never holds a private key in the clear: each secret is
sealed with a fresh data key, and the data key is wrapped with the store key, which
lives in a file on the hosts only (README "Store key"). Someone with the database
alone cannot use any certificate.

The store key file (text, 0600)::

    certctl-store-key 1
    # <comment lines, ignored>
    <base64 (RFC 4648, padded) of the 32 key bytes>

Its first line is exactly `certctl-store-key 1`; after it, empty lines and lines
starting with `#` are ignored, and exactly one other line holds the key. The key id
(16 hex digits) is derived from the key (SHA-256 over a domain-separated prefix), so
it names the key without revealing it, and the file needs no id of its own.

A sealed blob (all lengths in bytes)::

    header      magic b"CCSL" (4) | format 0x01 (1) | key id (8)
    wrapped     nonce (12) | AES-256-GCM(store key, data key) with its tag (32 + 16)
    sealed      nonce (12) | AES-256-GCM(data key, plaintext) with its tag (n + 16)

Both encryptions authenticate the header and the caller's `context` (e.g.
"cert:shop:3:privkey") as associated data, each under its own label: a blob changed
anywhere, or moved to another row or field, does not open.

`cryptography` is imported when a secret is sealed or opened, not when this module is.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from certctl.errors import BadInput, ExitCode, StoreError

KEY_SIZE = 32  # AES-256
NONCE_SIZE = 12  # random 96-bit GCM nonces: fine for 2^32 seals per key (SP 800-38D §8.3)
TAG_SIZE = 16
MAGIC = b"CCSL"
FORMAT = 1
KEY_ID_SIZE = 8  # 16 hex digits
HEADER_SIZE = len(MAGIC) + 1 + KEY_ID_SIZE
WRAPPED_SIZE = NONCE_SIZE + KEY_SIZE + TAG_SIZE
MIN_BLOB_SIZE = HEADER_SIZE + WRAPPED_SIZE + NONCE_SIZE + TAG_SIZE

FILE_HEADER = "certctl-store-key 1"
FILE_MAX_SIZE = 4096  # a key file is ~100 bytes; anything far larger is not one
_ID_PREFIX = b"certctl store key id\x00"
_WRAP_LABEL = b"certctl sealed data key\x00"
_DATA_LABEL = b"certctl sealed secret\x00"


class SealError(StoreError):
    """A sealed secret does not open: damaged, moved to another record, or not sealed.

    A StoreError (exit 1): what is wrong is the store's content, which no retry fixes
    and which nothing in this run changed.
    """


class WrongStoreKey(SealError):
    """The secret was sealed with a store key other than the given one(s).

    Exit 2, bad input: the content is intact, the key file the user gave is the wrong
    one; nothing was changed.
    """

    exit_code = ExitCode.USAGE


def derive_key_id(secret: bytes) -> str:
    """The key's public name: 16 hex digits of a domain-separated SHA-256 of the key."""
    return hashlib.sha256(_ID_PREFIX + secret).hexdigest()[: KEY_ID_SIZE * 2]


@dataclass(frozen=True)
class StoreKey:
    """A store key: 32 secret bytes and the id derived from them (repr shows only the id)."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_SIZE:
            raise ValueError(f"a store key is {KEY_SIZE} bytes, not {len(self.secret)}")
        if self.key_id != derive_key_id(self.secret):
            raise ValueError(f"store key id {self.key_id!r} does not belong to this key")

    @classmethod
    def from_secret(cls, secret: bytes) -> StoreKey:
        """The StoreKey for these 32 bytes."""
        return cls(derive_key_id(secret), secret)

    @classmethod
    def generate(cls) -> StoreKey:
        """A new random key (os.urandom: the kernel's CSPRNG)."""
        return cls.from_secret(os.urandom(KEY_SIZE))


# ---- the key file ----------------------------------------------------------------


def key_file_text(key: StoreKey) -> str:
    """The key file's content for `key` (see the module docstring)."""
    encoded = base64.b64encode(key.secret).decode("ascii")
    return (
        f"{FILE_HEADER}\n"
        f"# certctl store key {key.key_id}: it decrypts the private keys in a shared store.\n"
        "# Keep it 0600, back it up apart from the database: lost, the keys are lost.\n"
        f"{encoded}\n"
    )


def generate_key_file(path: Path) -> StoreKey:
    """Write a new store key to `path` (0600 whatever the umask); never replaces a file.

    The key is written to a temp file in the same directory, fsynced, and linked to
    `path`: a link, unlike a rename, fails when `path` exists, even one that appeared
    since the check. Where the file system has no hard links, `path` is created
    exclusively (O_EXCL) and written in place.
    """
    from certctl.store.files import fsync_dir, temp_name, write_failed, write_new

    parent = path.parent
    if not parent.is_dir():
        raise BadInput(
            f"store key file {path}: directory {parent} does not exist; create it first"
            " (mkdir -p -m 700)"
        )
    if os.path.lexists(path):
        raise _exists(path)
    key = StoreKey.generate()
    data = key_file_text(key).encode("ascii")
    tmp = parent / temp_name(path.name)
    try:
        write_new(tmp, data, 0o600)  # O_CREAT|O_EXCL|O_NOFOLLOW, fchmod, fsync
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise _exists(path) from None
        except OSError as e:
            if not _no_hard_links(e):
                raise
            try:
                write_new(path, data, 0o600)
            except FileExistsError:
                raise _exists(path) from None
        finally:
            _unlink_quietly(tmp)
        fsync_dir(parent)
    except OSError as e:
        raise write_failed(f"write store key file {path}", e) from e
    return key


def _exists(path: Path) -> BadInput:
    return BadInput(
        f"store key file {path} already exists; certctl never overwrites a store key:"
        " give another path (remove the old file only if no store uses its key)"
    )


def _no_hard_links(error: OSError) -> bool:
    import errno

    return error.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):  # left behind, it holds the same key, 0600
        os.unlink(path)


def load_key_file(path: Path) -> StoreKey:
    """Read a store key file; refuse one others can read, a foreign owner, or bad content.

    A symlink is followed (secret mounts such as Kubernetes' are symlinks); the checks
    apply to the file it leads to. Messages name the file, never its content.
    """
    where = f"store key file {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BadInput(
            f"{where} does not exist; create one with 'certctl store init-key FILE'"
        ) from None
    except OSError as e:
        raise BadInput(f"{where}: cannot read it ({e.strerror or e})") from None
    try:
        info = os.fstat(fd)
        _check_file(path, where, info)
        data = os.read(fd, FILE_MAX_SIZE + 1)
    except OSError as e:
        raise BadInput(f"{where}: cannot read it ({e.strerror or e})") from None
    finally:
        os.close(fd)
    return StoreKey.from_secret(_parse_key_file(where, data))


def _check_file(path: Path, where: str, info: os.stat_result) -> None:
    """A regular file, owned by this user or root, that grants nothing to group or others."""
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"{where} is not a regular file; give the key file itself")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        # as ssh does for a private key: refuse it, say why and how to fix it
        raise BadInput(
            f"{where} has mode {mode:04o}: a store key must be readable by its owner only;"
            f" run 'chmod 600 {shlex.quote(str(path))}'"
        )
    me = os.geteuid()
    if info.st_uid not in (me, 0):
        raise BadInput(
            f"{where} is owned by uid {info.st_uid}, not by you (uid {me}) or root;"
            " chown it to the user that runs certctl"
        )
    if info.st_size > FILE_MAX_SIZE:
        raise BadInput(f"{where} is not a certctl store key file (too large)")


def _parse_key_file(where: str, data: bytes) -> bytes:
    """The 32 key bytes from the file's content; errors never quote the content."""
    if len(data) > FILE_MAX_SIZE:
        raise BadInput(f"{where} is not a certctl store key file (too large)")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise BadInput(f"{where} is not a certctl store key file (not text)") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != FILE_HEADER:
        if lines and lines[0].startswith("certctl-store-key "):
            raise BadInput(
                f"{where}: this key file format is newer than this certctl understands;"
                " upgrade certctl"
            )
        raise BadInput(
            f"{where} is not a certctl store key file (its first line must be '{FILE_HEADER}')"
        )
    values = [line.strip() for line in lines[1:] if line.strip() and not line.startswith("#")]
    if len(values) != 1:
        raise BadInput(
            f"{where} is damaged: it must hold exactly one key line, it holds {len(values)};"
            " restore it from your backup"
        )
    try:
        secret = base64.b64decode(values[0], validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(f"{where} is damaged: the key line is not base64; restore it") from None
    if len(secret) != KEY_SIZE:
        raise BadInput(
            f"{where} is damaged: the key is {len(secret)} bytes, a store key is {KEY_SIZE};"
            " restore it from your backup"
        )
    return secret


# ---- sealing ---------------------------------------------------------------------


def _header(key: StoreKey) -> bytes:
    return MAGIC + bytes([FORMAT]) + bytes.fromhex(key.key_id)


def _context_bytes(context: str) -> bytes:
    if not context:
        raise ValueError("a sealed secret needs a context (which record and field it is)")
    return context.encode("utf-8")


def seal(key: StoreKey, plaintext: bytes, context: str) -> bytes:
    """Encrypt `plaintext` for the record and field named by `context` (see the module doc)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = _header(key)
    bound = header + _context_bytes(context)  # the header is fixed-size: no ambiguity
    data_key = AESGCM.generate_key(bit_length=256)
    wrap_nonce = os.urandom(NONCE_SIZE)
    wrapped = AESGCM(key.secret).encrypt(wrap_nonce, data_key, _WRAP_LABEL + bound)
    data_nonce = os.urandom(NONCE_SIZE)
    sealed = AESGCM(data_key).encrypt(data_nonce, plaintext, _DATA_LABEL + bound)
    return header + wrap_nonce + wrapped + data_nonce + sealed


def is_sealed(blob: bytes) -> bool:
    """Whether `blob` looks like a sealed secret of a format this certctl reads."""
    return len(blob) >= MIN_BLOB_SIZE and blob[: len(MAGIC)] == MAGIC and blob[4] == FORMAT


def sealed_key_id(blob: bytes) -> str:
    """The id of the store key `blob` was sealed with (it need not be at hand)."""
    _check_blob(blob, "a secret in the store")
    return blob[len(MAGIC) + 1 : HEADER_SIZE].hex()


def _check_blob(blob: bytes, what: str) -> None:
    if len(blob) > len(MAGIC) and blob[: len(MAGIC)] == MAGIC and blob[4] != FORMAT:
        raise SealError(
            f"{what}: sealed in format {blob[4]}, newer than this certctl understands;"
            " upgrade certctl"
        )
    if not is_sealed(blob):
        raise SealError(f"{what}: not sealed data (damaged); restore it from a backup")


def _keyring(keys: Sequence[StoreKey] | StoreKey) -> dict[str, StoreKey]:
    if isinstance(keys, StoreKey):
        return {keys.key_id: keys}
    return {key.key_id: key for key in keys}


def unseal(keys: Sequence[StoreKey] | StoreKey, blob: bytes, context: str) -> bytes:
    """The plaintext of `blob`, sealed for `context` with one of `keys` (chosen by its id)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    bound_context = _context_bytes(context)
    _check_blob(blob, context)
    key_id = sealed_key_id(blob)
    ring = _keyring(keys)
    key = ring.get(key_id)
    if key is None:
        given = ", ".join(ring) or "none"
        plural = "keys are" if len(ring) > 1 else "key is"
        raise WrongStoreKey(
            f"{context}: sealed with store key {key_id}, the given {plural} {given}:"
            " use the key file this store was created with"
        )
    header = blob[:HEADER_SIZE]
    bound = header + bound_context
    wrap_nonce = blob[HEADER_SIZE : HEADER_SIZE + NONCE_SIZE]
    wrapped = blob[HEADER_SIZE + NONCE_SIZE : HEADER_SIZE + WRAPPED_SIZE]
    data_nonce = blob[HEADER_SIZE + WRAPPED_SIZE : HEADER_SIZE + WRAPPED_SIZE + NONCE_SIZE]
    sealed = blob[HEADER_SIZE + WRAPPED_SIZE + NONCE_SIZE :]
    try:
        data_key = AESGCM(key.secret).decrypt(wrap_nonce, wrapped, _WRAP_LABEL + bound)
        return AESGCM(data_key).decrypt(data_nonce, sealed, _DATA_LABEL + bound)
    except InvalidTag:
        raise SealError(
            f"{context}: the sealed secret is damaged or moved (it does not open here with"
            f" store key {key_id}); restore it from a backup or re-issue the certificate"
        ) from None


def reseal(
    old_keys: Sequence[StoreKey] | StoreKey, new_key: StoreKey, blob: bytes, context: str
) -> bytes:
    """`blob` sealed with `new_key` instead (key rotation); one already under it is kept.

    A blob already sealed with `new_key` is checked (it must open) and returned as it
    is, so an interrupted rotation can simply run again.
    """
    if sealed_key_id(blob) == new_key.key_id:
        unseal(new_key, blob, context)
        return blob
    return seal(new_key, unseal(old_keys, blob, context), context)
