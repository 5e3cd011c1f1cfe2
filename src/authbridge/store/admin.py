"""The console's admin password: one scrypt hash in the database, shared by every replica."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import anyio.to_thread
from sqlalchemy import select

from authbridge.store.models import AdminPasswordRow
from authbridge.store.repo import StoreContext

__all__ = ["AdminPasswordRepo", "hash_password", "verify_password"]

_ID = "admin"
#: scrypt cost: n=2**15, r=8, p=1 (about 32 MiB and a few tens of milliseconds per check).
_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024
MIN_LENGTH = 12
#: At most this many scrypt computations run at once (each takes a core and 32 MiB); the rest wait their turn.
HASHING_AT_ONCE = 2


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` of a password (random 16-byte salt)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a ``hash_password`` result (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM, dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, _unb64(digest))


class AdminPasswordRepo:
    """Set and check the admin password; ``fingerprint`` changes whenever the password does.

    ```
    await store.admin.set_password("correct horse battery staple")
    fingerprint = await store.admin.verify("correct horse battery staple")   # None when wrong or unset
    ```
    """

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        #: Bounds the scrypt threads: N sign-ins at once cannot pin every core or take 32 MiB each.
        self.hashing = anyio.CapacityLimiter(HASHING_AT_ONCE)

    async def set_password(self, password: str) -> None:
        """Set (or replace) the password; at least 12 characters."""
        if len(password) < MIN_LENGTH:
            raise ValueError(f"the admin password must have at least {MIN_LENGTH} characters")
        hashed = await anyio.to_thread.run_sync(hash_password, password, limiter=self.hashing)
        async with self._ctx.session() as session:
            row = await session.get(AdminPasswordRow, _ID)
            if row is None:
                session.add(AdminPasswordRow(id=_ID, password_hash=hashed, updated_at=self._ctx.clock()))
            else:
                row.password_hash, row.updated_at = hashed, self._ctx.clock()

    async def _stored(self) -> str | None:
        async with self._ctx.session() as session:
            return await session.scalar(select(AdminPasswordRow.password_hash).where(AdminPasswordRow.id == _ID))

    async def fingerprint(self) -> str | None:
        """A short digest of the stored hash (never the hash itself), or None when no password is set."""
        stored = await self._stored()
        return hashlib.sha256(stored.encode("ascii")).hexdigest()[:16] if stored else None

    async def verify(self, password: str) -> str | None:
        """The fingerprint when ``password`` is right; None when it is wrong or no password is set."""
        stored = await self._stored()
        if not stored or not password:
            return None
        ok = await anyio.to_thread.run_sync(verify_password, password, stored, limiter=self.hashing)
        return hashlib.sha256(stored.encode("ascii")).hexdigest()[:16] if ok else None
