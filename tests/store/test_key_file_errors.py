"""The key file when the file system says no, and inputs that are not what they claim: each is a CryptoError
naming the file or the input, never a traceback and never key material."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from authbridge.errors import CryptoError
from authbridge.store.crypto import FileKeyRing, format_key_ring
from tests.store.test_crypto import AAD, RING


def test_a_key_file_that_cannot_be_created_names_the_path(tmp_path: Path) -> None:
    """When the data directory cannot be made (a file stands in its place), opening says so with the path."""
    blocker = tmp_path / "data"
    blocker.write_text("a file, not a directory")
    path = blocker / "master.key"
    with pytest.raises(CryptoError, match=re.escape(f"cannot create the key file {path}: ")):
        FileKeyRing.open(path)
    assert blocker.read_text() == "a file, not a directory"


def test_a_key_file_that_cannot_be_read_names_the_path(tmp_path: Path) -> None:
    """A directory where the key file should be is reported as unreadable, with the path."""
    path = tmp_path / "master.key"
    path.mkdir()
    with pytest.raises(CryptoError, match=re.escape(f"cannot read the key file {path}: Is a directory")):
        FileKeyRing.open(path, create=False)


def test_a_key_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    """A key file holding bytes that are not UTF-8 is refused with what it should hold."""
    path = tmp_path / "master.key"
    path.write_bytes(b"k1:\xff\xfe\xfd\n")
    path.chmod(0o600)
    with pytest.raises(CryptoError, match=re.escape(f"the key file {path} is not UTF-8 text; expected")):
        FileKeyRing.open(path, create=False)


def test_rotating_into_a_vanished_directory_is_refused(tmp_path: Path) -> None:
    """Adding a key when the key file's directory has gone fails with the path, and creates nothing."""
    folder = tmp_path / "data"
    ring = FileKeyRing.open(folder / "master.key")
    shutil.rmtree(folder)
    with pytest.raises(CryptoError, match=re.escape(f"cannot write the key file {folder / 'master.key'}: ")):
        ring.add_active_key()
    assert not folder.exists()


def test_an_aad_with_a_lone_surrogate_is_refused() -> None:
    """Associated data that cannot be UTF-8 encoded is a CryptoError, not a UnicodeEncodeError."""
    with pytest.raises(CryptoError, match="the AAD is not valid Unicode text"):
        RING.encrypt("s3cret", aad="credential:\ud800")


def test_a_token_whose_data_is_not_base64_is_malformed() -> None:
    """Data of an impossible base64 length is reported as a malformed ciphertext of that key."""
    with pytest.raises(CryptoError, match=re.escape("cannot decrypt with key 'k1': the ciphertext is truncated")):
        RING.decrypt("v1.k1." + "A" * 41, aad=AAD)


def test_the_file_format_round_trips(tmp_path: Path) -> None:
    """A ring written with format_key_ring opens as a file ring with the same keys."""
    path = tmp_path / "master.key"
    path.write_text(format_key_ring(RING))
    path.chmod(0o600)
    assert FileKeyRing.open(path, create=False).kids == RING.kids
