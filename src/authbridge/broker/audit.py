"""The audit trail of token reads: noted in memory on the request path, written in batches off it."""

from __future__ import annotations

import logging

import anyio

from authbridge.errors import AuthBridgeError
from authbridge.store import ApiKeyRecord, EventRecord, Store
from authbridge.types import Clock

__all__ = ["AuditLog"]

logger = logging.getLogger("authbridge.audit")

#: Entries kept while the database is unreachable; past this the oldest are dropped (and counted in the log).
MAX_PENDING = 100_000


class AuditLog:
    """Notes ``token.read`` events (which key, which connection, when; never the token) and writes them in batches.

    ``note`` costs a list append; ``run_forever`` writes what was noted every ``interval`` seconds,
    and ``flush`` writes the rest (at shutdown).
    """

    def __init__(self, store: Store, *, clock: Clock, interval: float = 1.0) -> None:
        self.store = store
        self.clock = clock
        self.interval = interval
        self._pending: list[EventRecord] = []
        self.dropped = 0

    def note(self, type: str, caller: ApiKeyRecord | None, connection_id: str, integration_key: str | None) -> None:
        """Remember one audited action, to be written with the next batch."""
        if len(self._pending) >= MAX_PENDING:
            del self._pending[0]
            self.dropped += 1
        data = {"caller": {"id": caller.id, "name": caller.name}} if caller else {}
        self._pending.append(EventRecord(0, type, connection_id, integration_key, data, self.clock()))

    async def flush(self) -> int:
        """Write what was noted; return how many entries were written (0 when the write failed: they are kept)."""
        batch, self._pending = self._pending, []
        try:
            await self.store.events.add_audit(batch)
        except AuthBridgeError as exc:
            logger.warning("could not write %d audit entries (kept for the next try): %s", len(batch), exc)
            self._pending[:0] = batch
            return 0
        return len(batch)

    async def run_forever(self, stop: anyio.Event) -> None:
        """Write a batch every ``interval`` seconds until ``stop`` is set, then write the rest."""
        while not stop.is_set():
            with anyio.move_on_after(self.interval):
                await stop.wait()
            await self.flush()
