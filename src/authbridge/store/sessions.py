"""Console sessions on the server: a cookie is a session only while its row lives (sign-out deletes it)."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, select

from authbridge.store.models import ConsoleSessionRow
from authbridge.store.repo import StoreContext

__all__ = ["ConsoleSessionRepo"]


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


class ConsoleSessionRepo:
    """Start, check and end console sessions; only the SHA-256 of a session id is stored.

    ```
    await store.console_sessions.start(sid, "admin:ab12...", expires_at)
    await store.console_sessions.live(sid)     # True until it expires or ends
    await store.console_sessions.end(sid)      # sign-out: a copy of the cookie stops working
    ```
    """

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    async def start(self, sid: str, subject: str, expires_at: datetime) -> None:
        """Record a new session (expired ones are swept at the same time)."""
        now = self._ctx.clock()
        async with self._ctx.session() as session:
            await session.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at <= now))
            session.add(ConsoleSessionRow(sid_hash=_hash(sid), subject=subject, created_at=now, expires_at=expires_at))

    async def live(self, sid: str) -> bool:
        """Whether the session was started, has not ended and has not expired."""
        async with self._ctx.session() as session:
            expires_at = await session.scalar(
                select(ConsoleSessionRow.expires_at).where(ConsoleSessionRow.sid_hash == _hash(sid))
            )
        return expires_at is not None and expires_at > self._ctx.clock()

    async def end(self, sid: str) -> None:
        """End a session (nothing happens when it is unknown)."""
        async with self._ctx.session() as session:
            await session.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.sid_hash == _hash(sid)))
