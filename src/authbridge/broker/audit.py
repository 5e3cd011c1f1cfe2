"""The audit trail of token reads: noted in memory on the request path, written in batches off it."""

from __future__ import annotations

import collections
import logging
from datetime import datetime

import anyio

from authbridge.errors import AuthBridgeError
from authbridge.store import ApiKeyRecord, EventRecord, Store
from authbridge.types import Clock

__all__ = ["AuditLog"]

logger = logging.getLogger("authbridge.audit")

#: Entries kept while the database is unreachable; past this the oldest are dropped (and counted in the log).
MAX_PENDING = 100_000

_Noted = tuple[str, ApiKeyRecord | None, str, str | None, datetime]


class AuditLog:
    """Notes ``token.read`` events (which key, which connection, when; never the token) and writes them in batches.

    ``note`` costs a list append; ``run_forever`` writes what was noted every ``interval`` seconds,
    and ``flush`` writes the rest (at shutdown).
    """

    def __init__(self, store: Store, *, clock: Clock, interval: float = 1.0, max_pending: int = MAX_PENDING) -> None:
        self.store = store
        self.clock = clock
        self.interval = interval
        #: ``(type, caller, connection_id, integration_key, when)``: records are built at flush, off the request path.
        self._pending: collections.deque[_Noted] = collections.deque(maxlen=max_pending)
        self.dropped = 0

    def note(self, type: str, caller: ApiKeyRecord | None, connection_id: str, integration_key: str | None) -> None:
        """Remember one audited action, to be written with the next batch (the oldest go past MAX_PENDING)."""
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append((type, caller, connection_id, integration_key, self.clock()))

    async def flush(self) -> int:
        """Write what was noted; return how many entries were written (0 when the write failed: they are kept)."""
        if not self._pending:
            return 0
        noted = list(self._pending)
        self._pending.clear()
        batch = [
            EventRecord(0, type, connection_id, key, {"caller": {"id": c.id, "name": c.name}} if c else {}, when)
            for type, c, connection_id, key, when in noted
        ]
        try:
            await self.store.events.add_audit(batch)
        except AuthBridgeError as exc:
            logger.warning("could not write %d audit entries (kept for the next try): %s", len(batch), exc)
            self._pending.extendleft(reversed(noted))
            return 0
        return len(batch)

    async def run_forever(self, stop: anyio.Event) -> None:
        """Write a batch every ``interval`` seconds until ``stop`` is set, then write the rest."""
        while not stop.is_set():
            with anyio.move_on_after(self.interval):
                await stop.wait()
            await self.flush()
        await self.flush()  # what was noted after the last batch (stop may come before the first)
