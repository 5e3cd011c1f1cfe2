"""The cache-invalidation log: what other processes must drop from their in-memory caches.

Writers add a row in the same transaction as the change (:func:`invalidate`), so a change is never
visible without its row. Readers (``broker.cache_sync``) ask for the rows after the last id they saw,
plus the ids they found missing: on PostgreSQL a sequence hands out ids at insert time and
transactions commit in any order, so a smaller id may appear after a larger one.
"""

from __future__ import annotations

import typing
from collections.abc import Collection

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from authbridge.store.models import CacheInvalidationRow

if typing.TYPE_CHECKING:
    from authbridge.store.repo import StoreContext

__all__ = ["Invalidation", "InvalidationRepo", "invalidate"]

Kind = typing.Literal["api_key", "connection", "integration"]


class Invalidation(typing.NamedTuple):
    """One logged change: its id, what kind of thing changed and which one."""

    id: int
    kind: str
    ref: str


async def invalidate(session: AsyncSession, ctx: StoreContext, kind: Kind, ref: str) -> None:
    """Log, in the caller's transaction, that caches holding ``kind``/``ref`` must drop it."""
    await session.execute(insert(CacheInvalidationRow).values(kind=kind, ref=ref, created_at=ctx.db_now()))


class InvalidationRepo:
    """Reads and prunes the invalidation log."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    async def latest(self) -> int:
        """The largest id logged so far (0 when none)."""
        async with self._ctx.session() as session:
            return int(await session.scalar(select(func.coalesce(func.max(CacheInvalidationRow.id), 0))) or 0)

    async def after(self, last: int, missing: Collection[int] = (), *, limit: int = 1000) -> list[Invalidation]:
        """Rows with an id above ``last``, or one of the ``missing`` ids, in id order (at most ``limit``).

        One query on the primary key; nothing new means an empty index range scan.
        """
        condition = CacheInvalidationRow.id > last
        if missing:
            condition = or_(condition, CacheInvalidationRow.id.in_(list(missing)))
        query = (
            select(CacheInvalidationRow.id, CacheInvalidationRow.kind, CacheInvalidationRow.ref)
            .where(condition)
            .order_by(CacheInvalidationRow.id)
            .limit(limit)
        )
        async with self._ctx.session() as session:
            return [Invalidation(int(i), k, r) for i, k, r in (await session.execute(query)).all()]

    async def prune(self, *, older_than: float) -> int:
        """Delete rows logged more than ``older_than`` seconds ago (database clock); return how many."""
        async with self._ctx.session() as session:
            result = await session.execute(
                delete(CacheInvalidationRow).where(CacheInvalidationRow.created_at < self._ctx.db_now(-older_than))
            )
            return int(typing.cast(typing.Any, result).rowcount or 0)
