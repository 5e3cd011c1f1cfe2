"""AES-256-GCM encryption of stored secrets: key ids, key rings, row-bound AAD and the key file."""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import os
import re
import secrets
import stat
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from authbridge.errors import CryptoError

__all__ = ["FileKeyRing", "Key", "KeyRing", "aad_for", "format_key_ring", "generate_key", "parse_key_ring"]

_VERSION = "v1"
_KEY_SIZE = 32
_NONCE_SIZE = 12
_TAG_SIZE = 16
_KID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TOKEN = re.compile(r"v1\.([A-Za-z0-9_-]{1,32})\.([A-Za-z0-9_-]+)")
_KEY_B64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_URLSAFE_TO_STD = str.maketrans("-_", "+/")
_KID_RULE = "1 to 32 characters of letters, digits, '_' or '-'"
_ENTRY_RULE = "'kid:base64-key' with a 32-byte key in standard or URL-safe base64"
_FILE_HEADER = (
    "# AuthBridge key ring: one 'kid:base64-key' per line; the first key encrypts, every key decrypts.\n"
    "# Keep this file private (chmod 600) and back it up: without it the stored secrets are lost.\n"
)

_Signature = tuple[int, int, int]


@dataclass(frozen=True, repr=False)
class Key:
    """One AES-256 key and its id. ``repr`` and ``str`` never show the secret.

    ```
    key = Key("k1", secrets.token_bytes(32))   # or generate_key()
    ring = KeyRing([key])
    ```
    """

    kid: str
    secret: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.kid, str) or not _KID.fullmatch(self.kid):
            raise CryptoError(f"invalid key id: a key id is {_KID_RULE}")
        if not isinstance(self.secret, bytes) or len(self.secret) != _KEY_SIZE:
            raise CryptoError(f"key {self.kid!r}: the secret must be exactly {_KEY_SIZE} bytes (AES-256)")

    def __repr__(self) -> str:
        return f"Key(kid={self.kid!r}, secret=<hidden>)"


class _State(NamedTuple):
    keys: tuple[Key, ...]
    ciphers: dict[str, AESGCM]


def _make_state(keys: Sequence[Key]) -> _State:
    keys = tuple(keys)
    ciphers: dict[str, AESGCM] = {}
    for key in keys:
        if key.kid in ciphers:
            raise CryptoError(f"the key ring has two keys with id {key.kid!r}; each key needs its own id")
        ciphers[key.kid] = AESGCM(key.secret)
    if not ciphers:
        raise CryptoError("a key ring needs at least one key")
    return _State(keys, ciphers)


class KeyRing:
    """The first key encrypts; every key decrypts.

    Ciphertexts read ``v1.<kid>.<base64url(nonce || ciphertext || tag)>``. The AAD binds each one to
    its row and column (see `aad_for`) and to its version and key id, so it cannot be moved or relabelled.

    ```
    ring = parse_key_ring("k2:...,k1:...")
    token = ring.encrypt("s3cret", aad=aad_for("credential", row_id, "access_token"))
    ring.decrypt_str(token, aad=aad_for("credential", row_id, "access_token"))  # "s3cret"
    ring.is_current(token)  # False once a newer key is first: re-encrypt during rotation
    ```
    """

    def __init__(self, keys: Sequence[Key]) -> None:
        self._state = _make_state(keys)

    def _current(self) -> _State:
        """The keys to use now; a file-backed ring re-checks its file here."""
        return self._state

    def _reload(self) -> _State:
        """Reload the keys from their source, if there is one."""
        return self._state

    @property
    def active_kid(self) -> str:
        """The id of the key that encrypts."""
        return self._current().keys[0].kid

    @property
    def kids(self) -> tuple[str, ...]:
        """Every key id, the active one first."""
        return tuple(key.kid for key in self._current().keys)

    def encrypt(self, plaintext: str | bytes, *, aad: str) -> str:
        """Encrypt ``plaintext`` (text is UTF-8 encoded) under the active key, bound to ``aad``."""
        state = self._current()
        kid = state.keys[0].kid
        nonce = os.urandom(_NONCE_SIZE)  # what secrets.token_bytes returns, without its two Python calls
        sealed = state.ciphers[kid].encrypt(nonce, _to_bytes(plaintext, "plaintext"), _bind(kid, aad))
        return f"{_VERSION}.{kid}.{_b64url(nonce + sealed)}"

    def decrypt(self, token: str, *, aad: str) -> bytes:
        """Decrypt a token made by `encrypt` with the same ``aad``.

        Raises:
            CryptoError: the token is malformed, its key is not in the ring, or it was encrypted with
                another key or AAD, or altered. The message never contains key material or plaintext.
        """
        kid, blob = _parse_token(token)
        state = self._current()
        if kid not in state.ciphers:
            state = self._reload()
        if kid not in state.ciphers:
            have = ", ".join(repr(key.kid) for key in state.keys)
            raise CryptoError(
                f"cannot decrypt a secret encrypted with key {kid!r}: the key ring has no key {kid!r} "
                f"(it has {have}); add that key back to the key ring"
            )
        try:
            return state.ciphers[kid].decrypt(blob[:_NONCE_SIZE], blob[_NONCE_SIZE:], _bind(kid, aad))
        except InvalidTag:
            raise CryptoError(
                f"cannot decrypt with key {kid!r}: wrong key or the ciphertext was moved or altered"
            ) from None

    def decrypt_str(self, token: str, *, aad: str) -> str:
        """Decrypt a token whose plaintext is UTF-8 text."""
        try:
            return self.decrypt(token, aad=aad).decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError("the decrypted secret is not UTF-8 text; read it with decrypt()") from None

    def kid_of(self, token: str) -> str:
        """The id of the key a token was encrypted with, without decrypting it."""
        return _parse_token(token)[0]

    def is_current(self, token: str) -> bool:
        """Whether a token is encrypted under the active key (raises `CryptoError` if it is malformed)."""
        return self.kid_of(token) == self.active_kid

    def steady(self) -> KeyRing:
        """This ring as it is now, for one run of operations (a batch): a file-backed ring checks its file
        once here instead of at each operation. A key id it does not have still makes it reload from the source.
        """
        return _Steady(self)

    def with_new_active(self, key: Key) -> KeyRing:
        """A new in-memory ring with ``key`` first (encrypting), then this ring's keys."""
        return KeyRing([key, *self._current().keys])

    def __repr__(self) -> str:
        # The keys as last loaded: a repr touches no file.
        kids = tuple(key.kid for key in self._state.keys)
        return f"{type(self).__name__}({self._repr_prefix()}active={kids[0]!r}, kids={kids!r})"

    def _repr_prefix(self) -> str:
        return ""


class _Steady(KeyRing):
    """A ring's keys as they were when made (``KeyRing.steady``); an unknown key id reloads the source ring."""

    def __init__(self, source: KeyRing) -> None:
        self._source = source
        self._state = source._current()

    def _reload(self) -> _State:
        self._state = self._source._reload()
        return self._state

    def _repr_prefix(self) -> str:
        return "steady, "


def aad_for(table: str, row_id: str, column: str) -> str:
    """The AAD that binds a ciphertext to one column of one row: ``authbridge:<table>:<row_id>:<column>``."""
    if not table or not column or ":" in table or ":" in column or not row_id:
        raise CryptoError("aad_for needs a non-empty table, row id and column; table and column without ':'")
    return f"authbridge:{table}:{row_id}:{column}"


def generate_key(kid: str | None = None) -> Key:
    """A new random key; the default id is ``k`` + the UTC time (YYYYmmddHHMMSS) + 4 random hex digits."""
    if kid is None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
        kid = f"k{stamp}{secrets.token_hex(2)}"
    return Key(kid, secrets.token_bytes(_KEY_SIZE))


def parse_key_ring(text: str) -> KeyRing:
    """Read ``kid:base64`` entries separated by commas and/or newlines; ``#`` lines are comments.

    Raises:
        CryptoError: naming the entry by position (and key id once it is known) and what is accepted.
    """
    keys: list[Key] = []
    seen: dict[str, int] = {}
    lines = (line for line in text.splitlines() if not line.strip().startswith("#"))
    entries = (entry.strip() for line in lines for entry in line.split(","))
    for n, entry in enumerate((entry for entry in entries if entry), start=1):
        kid, colon, encoded = (part.strip() for part in entry.partition(":"))
        if not colon:
            raise CryptoError(f"key ring entry {n}: expected {_ENTRY_RULE}")
        if not _KID.fullmatch(kid):
            raise CryptoError(f"key ring entry {n}: the key id must be {_KID_RULE}")
        if kid in seen:
            raise CryptoError(f"key ring entry {n}: key id {kid!r} is already used by entry {seen[kid]}")
        secret = _decode_key(encoded)
        if secret is None:
            raise CryptoError(f"key ring entry {n} (key {kid!r}): not valid base64; expected {_ENTRY_RULE}")
        if len(secret) != _KEY_SIZE:
            raise CryptoError(f"key ring entry {n} (key {kid!r}): {len(secret)} bytes, not 32; expected {_ENTRY_RULE}")
        seen[kid] = n
        keys.append(Key(kid, secret))
    if not keys:
        raise CryptoError(f"the key ring is empty: give at least one entry {_ENTRY_RULE}")
    return KeyRing(keys)


def format_key_ring(ring: KeyRing) -> str:
    """One ``kid:base64`` line per key, the active key first; `parse_key_ring` reads it back."""
    return _format_keys(ring._current().keys)


class FileKeyRing(KeyRing):
    """A key ring backed by a file (the generated ./data/master.key). Reloads when the file changes,
    so a running service picks up a key added by `authbridge encryption rotate`.

    Every operation re-stats the file (inode, mtime, size) and reloads it if it changed; decrypting
    with an unknown key id forces one reload before failing.

    ```
    ring = FileKeyRing.open(Path("data/master.key"))  # created with one key (mode 600) if missing
    token = ring.encrypt(b"...", aad=aad_for("credential", row_id, "refresh_token"))
    new_key = ring.add_active_key()  # rotation: new secrets use new_key, old ones still decrypt
    ```
    """

    def __init__(self, path: Path) -> None:
        """Load an existing key file; `open` is the usual way in."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self._state, self._signature = self._read()

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> FileKeyRing:
        """Open the key file, first creating it with one generated key if it is missing and ``create``.

        Raises:
            CryptoError: the file is missing (and not ``create``), unreadable, malformed, or open to
                group or others (the message says ``chmod 600 <path>``).
        """
        path = Path(path)
        if create and not path.exists():
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                with _directory_lock(path.parent) as dir_fd:
                    if not path.exists():
                        _write_atomic(path, _FILE_HEADER + _format_keys([generate_key()]), dir_fd)
            except OSError as exc:
                raise CryptoError(f"cannot create the key file {path}: {exc.strerror}") from None
        return cls(path)

    def add_active_key(self, key: Key | None = None) -> Key:
        """Prepend ``key`` (default: `generate_key()`) to the file atomically; it encrypts from now on."""
        key = generate_key() if key is None else key
        try:
            with _directory_lock(self.path.parent) as dir_fd:
                keys = self._reload().keys
                if any(old.kid == key.kid for old in keys):
                    raise CryptoError(f"the key file {self.path} already has a key {key.kid!r}")
                _write_atomic(self.path, _FILE_HEADER + _format_keys([key, *keys]), dir_fd)
        except OSError as exc:
            raise CryptoError(f"cannot write the key file {self.path}: {exc.strerror}") from None
        self._reload()
        return key

    def _current(self) -> _State:
        try:
            st = os.stat(self.path)
        except OSError:
            return self._reload()  # raises the reason, or recovers if the file is back
        if (st.st_ino, st.st_mtime_ns, st.st_size) != self._signature:
            return self._reload()
        return self._state

    def _reload(self) -> _State:
        with self._lock:
            state, signature = self._read()
            # The state goes first: a reader that still sees the old signature merely reloads again.
            self._state = state
            self._signature = signature
        return state

    def _read(self) -> tuple[_State, _Signature]:
        """Parse the file, with the signature of exactly the version that was read."""
        try:
            with self.path.open("r", encoding="utf-8") as file:
                st = os.fstat(file.fileno())
                if os.name == "posix" and st.st_mode & 0o077:
                    mode = stat.S_IMODE(st.st_mode)
                    raise CryptoError(
                        f"the key file {self.path} is open to group or others (mode {mode:o}); "
                        f"run `chmod 600 {self.path}`"
                    )
                text = file.read()
        except FileNotFoundError:
            raise CryptoError(
                f"the key file {self.path} does not exist; restore it from your backup "
                "(without it the stored secrets cannot be decrypted)"
            ) from None
        except OSError as exc:
            raise CryptoError(f"cannot read the key file {self.path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CryptoError(f"the key file {self.path} is not UTF-8 text; expected {_ENTRY_RULE}") from None
        try:
            state = parse_key_ring(text)._state
        except CryptoError as exc:
            raise CryptoError(f"{self.path}: {exc.message}") from None
        return state, (st.st_ino, st.st_mtime_ns, st.st_size)

    def _repr_prefix(self) -> str:
        return f"path={str(self.path)!r}, "


def _bind(kid: str, aad: str) -> bytes:
    """The AESGCM associated data: version and key id, then the caller's AAD (a kid has no '|')."""
    return f"{_VERSION}.{kid}|".encode() + _to_bytes(aad, "AAD")


def _to_bytes(value: str | bytes, what: str) -> bytes:
    if not isinstance(value, str):
        return bytes(value)
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise CryptoError(f"the {what} is not valid Unicode text (it has a lone surrogate)") from None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _parse_token(token: str) -> tuple[str, bytes]:
    match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise CryptoError("cannot decrypt: not an AuthBridge ciphertext (expected 'v1.<kid>.<data>')")
    kid, body = match.groups()
    try:
        blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except binascii.Error:
        blob = b""
    # Only the canonical encoding is accepted, so every character of a token is tamper-evident.
    if len(blob) < _NONCE_SIZE + _TAG_SIZE or _b64url(blob) != body:
        raise CryptoError(f"cannot decrypt with key {kid!r}: the ciphertext is truncated or malformed")
    return kid, blob


def _decode_key(encoded: str) -> bytes | None:
    if not _KEY_B64.fullmatch(encoded):
        return None
    data = encoded.rstrip("=").translate(_URLSAFE_TO_STD)
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except binascii.Error:
        return None


def _format_keys(keys: Sequence[Key]) -> str:
    return "".join(f"{key.kid}:{base64.b64encode(key.secret).decode('ascii')}\n" for key in keys)


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[int]:
    """Hold an exclusive lock on a directory, so two writers of the key file take turns."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str, dir_fd: int) -> None:
    """Write a 0600 temporary file beside ``path``, fsync it, rename it over ``path``, fsync the directory."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(fd, 0o600)
            file.write(text)
            file.flush()
            os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.fsync(dir_fd)
