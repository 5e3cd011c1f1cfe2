"""Key ring checks at start, and re-encryption of every secret under the active key."""

from __future__ import annotations

import typing

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from authbridge.errors import CryptoError, KeyRingMismatchError
from authbridge.store.crypto import aad_for
from authbridge.store.models import SECRET_COLUMNS, KeyCanaryRow
from authbridge.store.repo import StoreContext

__all__ = ["KeyManager"]

_CANARY = "authbridge key canary"
_BATCH = 200


class KeyManager:
    """Proves the key ring fits the stored data, and moves every secret to the active key."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    async def verify(self) -> None:
        """Refuse (KeyRingMismatchError) a key ring that cannot decrypt what is stored; record a canary.

        Every key that ever encrypted has a canary row (a known plaintext). Each canary must decrypt,
        and so must one stored secret of every encrypted column.
        """
        async with self._ctx.session() as session:
            canaries = (await session.scalars(select(KeyCanaryRow))).all()
            samples = []
            for model, pk, column in SECRET_COLUMNS:
                col = getattr(model, column)
                found = (
                    await session.execute(select(getattr(model, pk), col).where(col.is_not(None)).limit(1))
                ).first()
                if found is not None:
                    samples.append((model.__tablename__, str(found[0]), column, str(found[1])))
        self._check_canaries(canaries)
        for table, row_id, column, ciphertext in samples:
            self._check(ciphertext, table, row_id, column)
        await self.ensure_canary()

    async def check_canaries(self) -> None:
        """Refuse (KeyRingMismatchError) a key ring that lacks a stored canary's key or cannot decrypt it.

        Read-only and cheap (one row per key ever used): the readiness check runs it.
        """
        async with self._ctx.session() as session:
            canaries = (await session.scalars(select(KeyCanaryRow))).all()
        self._check_canaries(canaries)

    def _check_canaries(self, canaries: typing.Sequence[KeyCanaryRow]) -> None:
        for canary in canaries:
            if canary.kid not in self._ctx.keyring.kids:
                raise KeyRingMismatchError(
                    f"stored secrets were encrypted with key {canary.kid!r}, which is not in the key ring; "
                    "restore that key (AUTHBRIDGE_ENCRYPTION_KEYS or the key file) before starting"
                )
            self._check(canary.ciphertext, "key_canaries", canary.kid, "ciphertext", expect=_CANARY)

    def _check(self, ciphertext: str, table: str, row_id: str, column: str, *, expect: str | None = None) -> None:
        try:
            kid = self._ctx.keyring.kid_of(ciphertext)
            plaintext = self._ctx.keyring.decrypt_str(ciphertext, aad=aad_for(table, row_id, column))
        except CryptoError as exc:
            raise KeyRingMismatchError(
                f"the key ring cannot decrypt the stored data ({exc}); "
                "start with the key ring the data was encrypted with"
            ) from None
        if expect is not None and plaintext != expect:
            raise KeyRingMismatchError(f"key {kid!r} does not match the stored canary")

    async def ensure_canary(self) -> None:
        """Record the canary of the active key if it has none yet."""
        kid = self._ctx.keyring.active_kid
        try:
            async with self._ctx.session() as session:
                if await session.get(KeyCanaryRow, kid) is None:
                    session.add(
                        KeyCanaryRow(
                            kid=kid,
                            ciphertext=self._ctx.encrypt(_CANARY, "key_canaries", kid, "ciphertext") or "",
                            created_at=self._ctx.clock(),
                        )
                    )
        except IntegrityError:
            pass  # another process recorded it first

    async def reencrypt_all(self) -> int:
        """Re-encrypt every secret not yet under the active key, in small batches; return how many.

        Each row is updated only if its ciphertext is still the one read (a concurrent write wins),
        so this is safe while the service runs.
        """
        await self.ensure_canary()
        ring = self._ctx.keyring
        done = 0
        for model, pk, column in SECRET_COLUMNS:
            table = model.__tablename__
            pk_col, col = getattr(model, pk), getattr(model, column)
            last = ""
            while True:
                async with self._ctx.session() as session:
                    rows = (
                        await session.execute(
                            select(pk_col, col).where(col.is_not(None), pk_col > last).order_by(pk_col).limit(_BATCH)
                        )
                    ).all()
                    if not rows:
                        break
                    for row_id, ciphertext in rows:
                        last = row_id
                        if ring.is_current(ciphertext):
                            continue
                        aad = aad_for(table, row_id, column)
                        fresh = ring.encrypt(ring.decrypt(ciphertext, aad=aad), aad=aad)
                        result = await session.execute(
                            update(model).where(pk_col == row_id, col == ciphertext).values({column: fresh})
                        )
                        done += int(typing.cast(typing.Any, result).rowcount or 0)
        if await self.stale_count() == 0:
            # Nothing needs the older keys any more: forget their canaries, so they may be dropped.
            async with self._ctx.session() as session:
                await session.execute(delete(KeyCanaryRow).where(KeyCanaryRow.kid != ring.active_kid))
        return done

    async def stale_count(self) -> int:
        """How many stored secrets are not under the active key."""
        ring = self._ctx.keyring
        stale = 0
        async with self._ctx.session() as session:
            for model, _pk, column in SECRET_COLUMNS:
                col = getattr(model, column)
                current = col.startswith(f"v1.{ring.active_kid}.", autoescape=True)
                count = await session.scalar(select(func.count()).where(col.is_not(None), ~current))
                stale += int(count or 0)
        return stale
