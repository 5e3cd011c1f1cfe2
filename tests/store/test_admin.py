"""The console's admin password in the store (both backends), and its scrypt hash format."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from authbridge.store import Store
from authbridge.store.admin import hash_password, verify_password

PASSWORD = "correct horse battery staple"


async def test_unset_then_set_then_replaced(store: Store) -> None:
    """No password: nothing verifies. Set: only it verifies. Replaced: the old one stops, the fingerprint moves."""
    assert await store.admin.fingerprint() is None
    assert await store.admin.verify(PASSWORD) is None
    await store.admin.set_password(PASSWORD)
    first = await store.admin.fingerprint()
    assert first is not None and await store.admin.verify(PASSWORD) == first
    assert await store.admin.verify("wrong password!") is None
    assert await store.admin.verify("") is None
    await store.admin.set_password("another long password")
    second = await store.admin.fingerprint()
    assert second not in (None, first)
    assert await store.admin.verify(PASSWORD) is None
    assert await store.admin.verify("another long password") == second
    async with store.engine.connect() as connection:
        dump = str((await connection.execute(text("SELECT * FROM admin_password"))).all())
    assert PASSWORD not in dump and "another long password" not in dump and "scrypt$" in dump


async def test_a_short_password_is_refused_and_nothing_changes(store: Store) -> None:
    """Fewer than 12 characters is refused with the rule; the stored password stays."""
    await store.admin.set_password(PASSWORD)
    before = await store.admin.fingerprint()
    with pytest.raises(ValueError, match="at least 12 characters"):
        await store.admin.set_password("short")
    assert await store.admin.fingerprint() == before and await store.admin.verify(PASSWORD) == before


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not a hash",
        "bcrypt$2$8$1$c2FsdA$ZGlnZXN0",  # another scheme
        "scrypt$many$8$1$c2FsdA$ZGlnZXN0",  # n is not a number
        "scrypt$3$8$1$c2FsdA$ZGlnZXN0",  # n is not a power of two: scrypt refuses it
    ],
)
def test_a_malformed_stored_hash_never_verifies(stored: str) -> None:
    """A stored value that is not our scrypt format is a mismatch, never an exception."""
    assert verify_password(PASSWORD, stored) is False


def test_hash_format_and_salt() -> None:
    """``scrypt$n$r$p$salt$hash``: a fresh salt each time, the same salt gives the same hash."""
    one, two = hash_password(PASSWORD), hash_password(PASSWORD)
    assert one != two and one.split("$")[:4] == ["scrypt", "32768", "8", "1"]
    assert verify_password(PASSWORD, one) and verify_password(PASSWORD, two)
    assert hash_password(PASSWORD, salt=b"s" * 16) == hash_password(PASSWORD, salt=b"s" * 16)
