"""Tests for authbridge.store.crypto: AES-256-GCM secrets, key rings and the key file."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from authbridge.errors import CryptoError
from authbridge.store.crypto import (
    FileKeyRing,
    Key,
    KeyRing,
    aad_for,
    format_key_ring,
    generate_key,
    parse_key_ring,
)

SECRET_1 = bytes(range(32))
SECRET_2 = bytes(range(100, 132))
RING = KeyRing([Key("k1", SECRET_1)])
AAD = aad_for("credential", "row-1", "access_token")


def _encodings(secret: bytes) -> list[str]:
    """Every way the secret could show up in a message or repr."""
    return [
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode(),
        base64.b64encode(secret).decode().rstrip("="),
        secret.hex(),
        repr(secret),
    ]


def _replace_char(text: str, i: int) -> str:
    return text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]


def test_round_trip_bytes_and_text() -> None:
    """Decrypting with the same AAD gives back the bytes or the text that was encrypted."""
    assert RING.decrypt(RING.encrypt(b"\x00\xffraw", aad=AAD), aad=AAD) == b"\x00\xffraw"
    assert RING.decrypt_str(RING.encrypt("s3cret é", aad=AAD), aad=AAD) == "s3cret é"
    assert RING.decrypt(RING.encrypt("", aad=AAD), aad=AAD) == b""


def test_token_format_names_version_and_key() -> None:
    """A ciphertext is 'v1.<kid>.<base64url>' and its key id can be read without decrypting."""
    token = RING.encrypt("x", aad=AAD)
    assert re.fullmatch(r"v1\.k1\.[A-Za-z0-9_-]+", token)
    assert RING.kid_of(token) == "k1"
    assert RING.is_current(token)


def test_same_plaintext_encrypts_differently() -> None:
    """Two encryptions of the same plaintext differ, because each uses a random nonce."""
    assert RING.encrypt("same", aad=AAD) != RING.encrypt("same", aad=AAD)


@pytest.mark.parametrize(
    "other",
    [
        aad_for("credential", "row-2", "access_token"),
        aad_for("credential", "row-1", "refresh_token"),
        aad_for("connection", "row-1", "access_token"),
        "",
    ],
    ids=["other-row", "other-column", "other-table", "empty"],
)
def test_ciphertext_moved_to_another_place_fails(other: str) -> None:
    """A ciphertext copied to another row, column or table does not decrypt there."""
    token = RING.encrypt("s3cret", aad=AAD)
    with pytest.raises(CryptoError, match="wrong key or the ciphertext was moved or altered") as excinfo:
        RING.decrypt(token, aad=other)
    assert "s3cret" not in str(excinfo.value)


def test_invalid_tag_is_not_leaked() -> None:
    """The cryptography exception is replaced, not chained, so tracebacks show only the CryptoError."""
    token = RING.encrypt("s3cret", aad=AAD)
    with pytest.raises(CryptoError, match="wrong key or the ciphertext was moved or altered") as excinfo:
        RING.decrypt(token, aad="elsewhere")
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__


def test_flipping_any_byte_of_the_ciphertext_fails() -> None:
    """Changing any byte of nonce, ciphertext or tag makes decryption fail."""
    token = RING.encrypt("s3cret", aad=AAD)
    prefix, body = token.rsplit(".", 1)
    blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    for i in range(len(blob)):
        tampered = blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1 :]
        encoded = base64.urlsafe_b64encode(tampered).decode().rstrip("=")
        with pytest.raises(CryptoError, match="wrong key or the ciphertext was moved or altered"):
            RING.decrypt(f"{prefix}.{encoded}", aad=AAD)


def test_changing_any_character_of_the_token_fails() -> None:
    """Changing any character of the token, even an unused padding bit, makes decryption fail."""
    token = RING.encrypt("s3cret", aad=AAD)
    for i in range(len(token)):
        with pytest.raises(CryptoError, match=r"^cannot decrypt"):
            RING.decrypt(_replace_char(token, i), aad=AAD)


def test_changing_the_kid_prefix_fails() -> None:
    """Relabelling a ciphertext with another key id fails even when both ids hold the same secret."""
    ring = KeyRing([Key("k1", SECRET_1), Key("k2", SECRET_1)])
    token = ring.encrypt("s3cret", aad=AAD)
    with pytest.raises(CryptoError, match="wrong key or the ciphertext was moved or altered"):
        ring.decrypt(token.replace("v1.k1.", "v1.k2.", 1), aad=AAD)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1",
        "v1.k1",
        "v1.k1.",
        "v2.k1.AAAA",
        "v1.bad kid.AAAA",
        "v1.k1.!!!!",
        "v1.k1.AAAA",
        "v1.k1.AAAA.x",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    """A value that is not a well-formed v1 ciphertext raises CryptoError, also from kid_of."""
    with pytest.raises(CryptoError, match="cannot decrypt"):
        RING.decrypt(token, aad=AAD)
    if not token.startswith("v1.k1."):
        with pytest.raises(CryptoError, match="not an AuthBridge ciphertext"):
            RING.kid_of(token)


def test_unknown_kid_is_named() -> None:
    """Decrypting a secret whose key is not in the ring says which key is missing."""
    token = KeyRing([Key("old", SECRET_2)]).encrypt("s3cret", aad=AAD)
    with pytest.raises(CryptoError, match="the key ring has no key 'old'") as excinfo:
        RING.decrypt(token, aad=AAD)
    message = str(excinfo.value)
    assert "cannot decrypt a secret encrypted with key 'old': the key ring has no key 'old'" in message
    assert not any(text in message for text in _encodings(SECRET_1) + _encodings(SECRET_2))


def test_decrypt_str_refuses_non_utf8_without_showing_it() -> None:
    """decrypt_str raises CryptoError, not UnicodeDecodeError, and does not echo the bytes."""
    token = RING.encrypt(b"\xff\xfe", aad=AAD)
    with pytest.raises(CryptoError, match="the decrypted secret is not UTF-8 text") as excinfo:
        RING.decrypt_str(token, aad=AAD)
    assert "xff" not in str(excinfo.value)


def test_old_key_decrypts_after_rotation_and_new_key_encrypts() -> None:
    """After with_new_active the new key encrypts and the old key still decrypts."""
    old_token = RING.encrypt("old", aad=AAD)
    rotated = RING.with_new_active(Key("k2", SECRET_2))
    assert rotated.active_kid == "k2"
    assert rotated.kids == ("k2", "k1")
    assert rotated.decrypt_str(old_token, aad=AAD) == "old"
    assert not rotated.is_current(old_token)
    new_token = rotated.encrypt("new", aad=AAD)
    assert rotated.kid_of(new_token) == "k2"
    assert rotated.is_current(new_token)
    assert RING.kids == ("k1",)


def test_key_ring_needs_unique_keys() -> None:
    """A key ring refuses no keys and two keys with one id."""
    with pytest.raises(CryptoError, match="at least one key"):
        KeyRing([])
    with pytest.raises(CryptoError, match="two keys with id 'k1'"):
        KeyRing([Key("k1", SECRET_1), Key("k1", SECRET_2)])
    with pytest.raises(CryptoError, match="two keys with id 'k1'"):
        RING.with_new_active(Key("k1", SECRET_2))


@pytest.mark.parametrize("kid", ["", "a" * 33, "has space", "dot.ted", "colon:", "é"])
def test_key_refuses_bad_kids(kid: str) -> None:
    """A key id is 1 to 32 letters, digits, '_' or '-'."""
    with pytest.raises(CryptoError, match="key id"):
        Key(kid, SECRET_1)


def test_key_refuses_wrong_length() -> None:
    """A key must be exactly 32 bytes."""
    with pytest.raises(CryptoError, match="exactly 32 bytes"):
        Key("k1", SECRET_1[:16])


def test_reprs_hide_the_secret() -> None:
    """repr and str of Key and KeyRing show key ids but no key material."""
    key = Key("k1", SECRET_1)
    assert repr(key) == "Key(kid='k1', secret=<hidden>)"
    assert str(key) == repr(key)
    texts = [repr(key), str(key), repr(RING), str(RING), repr([key])]
    assert "k1" in repr(RING)
    for text in texts:
        assert not any(encoded in text for encoded in _encodings(SECRET_1))


def test_aad_for_names_the_row() -> None:
    """aad_for joins table, row id and column, and refuses parts that would make it ambiguous."""
    assert aad_for("connection", "42", "client_secret") == "authbridge:connection:42:client_secret"
    with pytest.raises(CryptoError, match="aad_for needs a non-empty table, row id and column"):
        aad_for("a:b", "1", "c")
    with pytest.raises(CryptoError, match="aad_for needs a non-empty table, row id and column"):
        aad_for("a", "", "c")


def test_generate_key() -> None:
    """generate_key makes a random 32-byte key with a timestamped id unless one is given."""
    first, second = generate_key(), generate_key()
    assert re.fullmatch(r"k20\d{12}[0-9a-f]{4}", first.kid)
    assert len(first.secret) == 32
    assert first.secret != second.secret
    assert generate_key("mine").kid == "mine"


def test_parse_key_ring_accepts_commas_newlines_comments_and_both_alphabets() -> None:
    """Entries may be split by commas or lines, with comments, in standard or URL-safe base64."""
    secret_3 = bytes([0xFB] * 32)  # encodes with '+' / '-' and '/' / '_'
    text = (
        "# the ring\n"
        f"\n  k3:{base64.urlsafe_b64encode(secret_3).decode().rstrip('=')} ,\n"
        f"k2:{base64.b64encode(SECRET_2).decode()},k1 : {base64.b64encode(SECRET_1).decode()}\n"
    )
    ring = parse_key_ring(text)
    assert ring.kids == ("k3", "k2", "k1")
    assert ring.decrypt_str(RING.encrypt("x", aad=AAD), aad=AAD) == "x"
    assert parse_key_ring(f"k3:{base64.b64encode(secret_3).decode()}").encrypt("y", aad=AAD)


def test_format_key_ring_round_trips() -> None:
    """format_key_ring writes one line per key, active first, and parse_key_ring reads it back."""
    ring = RING.with_new_active(Key("k2", SECRET_2))
    text = format_key_ring(ring)
    assert text.endswith("\n")
    assert text.splitlines()[0].startswith("k2:")
    again = parse_key_ring(text)
    assert again.kids == ("k2", "k1")
    assert again.decrypt_str(ring.encrypt("x", aad=AAD), aad=AAD) == "x"
    assert format_key_ring(again) == text


B64_1 = base64.b64encode(SECRET_1).decode()
ACCEPTED = "expected 'kid:base64-key' with a 32-byte key in standard or URL-safe base64"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the key ring is empty"),
        ("# only a comment\n\n", "the key ring is empty"),
        (B64_1, f"entry 1: {ACCEPTED}"),
        (f"k1:{B64_1}\nbad kid:{B64_1}", "entry 2: the key id must be 1 to 32 characters of letters"),
        (f"k1:{B64_1},k1:{B64_1}", "entry 2: key id 'k1' is already used by entry 1"),
        (f"k1:{B64_1[:-4]}!!!!", f"entry 1 (key 'k1'): not valid base64; {ACCEPTED}"),
        (f"k1:{B64_1}A", f"entry 1 (key 'k1'): not valid base64; {ACCEPTED}"),
        (
            f"k1:{base64.b64encode(SECRET_1[:16]).decode()}",
            f"entry 1 (key 'k1'): 16 bytes, not 32; {ACCEPTED}",
        ),
        (f"k1:{base64.b64encode(SECRET_1 + b'x').decode()}", "entry 1 (key 'k1'): 33 bytes, not 32"),
    ],
    ids=[
        "empty",
        "comments-only",
        "no-kid",
        "bad-kid",
        "duplicate",
        "bad-char",
        "bad-length",
        "short",
        "long",
    ],
)
def test_parse_key_ring_errors_name_the_entry_not_the_key(text: str, expected: str) -> None:
    """A malformed key ring names the entry and what is accepted, never the key material."""
    with pytest.raises(CryptoError, match=re.escape(expected)) as excinfo:
        parse_key_ring(text)
    message = str(excinfo.value)
    assert not any(encoded in message for encoded in _encodings(SECRET_1))
    assert B64_1[:-4] not in message


def test_file_key_ring_creates_a_private_file(tmp_path: Path) -> None:
    """open creates the directory (0700) and the file (0600) with one key, and reopening finds that key."""
    path = tmp_path / "data" / "master.key"
    ring = FileKeyRing.open(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(ring.kids) == 1
    token = ring.encrypt("s3cret", aad=AAD)
    again = FileKeyRing.open(path, create=False)
    assert again.kids == ring.kids
    assert again.decrypt_str(token, aad=AAD) == "s3cret"
    assert parse_key_ring(path.read_text()).kids == ring.kids
    assert str(path) in repr(ring)
    material = [line.partition(":")[2] for line in path.read_text().splitlines() if not line.startswith("#")]
    assert material[0] and material[0] not in repr(ring)


def test_file_key_ring_missing_without_create(tmp_path: Path) -> None:
    """open(create=False) refuses a missing file and creates nothing."""
    path = tmp_path / "master.key"
    with pytest.raises(CryptoError, match="does not exist"):
        FileKeyRing.open(path, create=False)
    assert not path.exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_file_key_ring_refuses_a_file_others_can_use(tmp_path: Path, mode: int) -> None:
    """A key file that group or others can read or write is refused with the chmod to run."""
    path = tmp_path / "master.key"
    path.write_text(format_key_ring(RING))
    path.chmod(mode)
    with pytest.raises(CryptoError, match=re.escape(f"chmod 600 {path}")):
        FileKeyRing.open(path)


def test_file_key_ring_reports_a_malformed_file(tmp_path: Path) -> None:
    """A malformed key file is refused with its path and the entry at fault."""
    path = tmp_path / "master.key"
    path.write_text("k1:not-a-key\n")
    path.chmod(0o600)
    with pytest.raises(CryptoError, match=re.escape(f"{path}: key ring entry 1 (key 'k1')")):
        FileKeyRing.open(path)


def test_file_key_ring_reloads_after_another_instance_rotates(tmp_path: Path) -> None:
    """A running ring picks up a key that another instance (the CLI) added, and still decrypts old secrets."""
    path = tmp_path / "master.key"
    service = FileKeyRing.open(path)
    old_kid = service.active_kid
    old_token = service.encrypt("old", aad=AAD)

    new_key = FileKeyRing.open(path).add_active_key(Key("k-new", SECRET_2))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.key"]
    token = service.encrypt("new", aad=AAD)
    assert service.kid_of(token) == new_key.kid == service.active_kid
    assert service.kids == ("k-new", old_kid)
    assert service.decrypt_str(old_token, aad=AAD) == "old"
    assert not service.is_current(old_token)


def test_add_active_key_generates_and_refuses_duplicates(tmp_path: Path) -> None:
    """add_active_key generates a key by default, becomes active at once and refuses a used key id."""
    ring = FileKeyRing.open(tmp_path / "master.key")
    key = ring.add_active_key()
    assert ring.active_kid == key.kid
    before = (tmp_path / "master.key").read_text()
    with pytest.raises(CryptoError, match="already has a key"):
        ring.add_active_key(Key(key.kid, SECRET_1))
    assert (tmp_path / "master.key").read_text() == before


def test_unknown_kid_forces_a_reload(tmp_path: Path) -> None:
    """Decrypting with an unknown key id reloads the file once, even if its stat looks unchanged."""
    path = tmp_path / "master.key"
    path.write_text(format_key_ring(KeyRing([Key("k1", SECRET_1)])))
    path.chmod(0o600)
    ring = FileKeyRing.open(path)
    before = path.stat()
    # Rewrite in place with the same size and mtime, so only the forced reload can notice.
    with path.open("r+") as file:
        file.write(format_key_ring(KeyRing([Key("k2", SECRET_2)])))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    token = KeyRing([Key("k2", SECRET_2)]).encrypt("s3cret", aad=AAD)
    assert ring.decrypt_str(token, aad=AAD) == "s3cret"
    with pytest.raises(CryptoError, match="the key ring has no key 'k9'"):
        ring.decrypt(KeyRing([Key("k9", SECRET_1)]).encrypt("x", aad=AAD), aad=AAD)


def test_removed_key_file_is_an_error(tmp_path: Path) -> None:
    """Once the key file is gone the ring refuses to encrypt rather than use keys nobody kept."""
    path = tmp_path / "master.key"
    ring = FileKeyRing.open(path)
    path.unlink()
    with pytest.raises(CryptoError, match="does not exist"):
        ring.encrypt("x", aad=AAD)


@given(plaintext=st.binary() | st.text(), aad=st.text(), other=st.text())
def test_property_round_trip_and_aad_binding(plaintext: bytes | str, aad: str, other: str) -> None:
    """decrypt(encrypt(x)) == x for any bytes or text and AAD, and any other AAD fails."""
    token = RING.encrypt(plaintext, aad=aad)
    expected = plaintext.encode() if isinstance(plaintext, str) else plaintext
    assert RING.decrypt(token, aad=aad) == expected
    assume(other != aad)
    with pytest.raises(CryptoError, match="wrong key or the ciphertext was moved or altered"):
        RING.decrypt(token, aad=other)


def test_a_steady_view_checks_the_key_file_once_and_still_learns_new_keys(tmp_path: Path) -> None:
    """A batch's view encrypts with the key active when it was made; a token under a key added since still decrypts."""
    path = tmp_path / "master.key"
    service = FileKeyRing.open(path)
    old_kid = service.active_kid
    steady = service.steady()
    new_key = FileKeyRing.open(path).add_active_key(Key("k-new", SECRET_2))
    assert steady.kid_of(steady.encrypt("batch", aad=AAD)) == old_kid  # the file is not checked again
    token = service.encrypt("new", aad=AAD)
    assert service.kid_of(token) == new_key.kid
    assert steady.decrypt_str(token, aad=AAD) == "new"  # an unknown key id reloads the file
    assert steady.kid_of(steady.encrypt("later", aad=AAD)) == new_key.kid
    assert repr(steady) == f"_Steady(steady, active='k-new', kids=('k-new', {old_kid!r}))"
