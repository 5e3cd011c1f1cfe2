"""The background pruning of events and webhook deliveries older than the retention period."""

from __future__ import annotations

import logging
from datetime import timedelta

import anyio

from authbridge.errors import AuthBridgeError
from authbridge.store import Store
from authbridge.types import Clock

__all__ = ["Pruner"]

logger = logging.getLogger("authbridge.retention")


class Pruner:
    """Deletes events (and their webhook deliveries) older than ``days``, ``batch`` rows per transaction.

    ```
    pruner = Pruner(store, clock=utcnow, days=30)
    await pruner.run_once()                 # (events, deliveries) deleted
    await pruner.run_forever(stop)          # every hour until ``stop`` is set
    ```

    Safe on several replicas at once: each batch deletes what is still there. Batches stay small so
    no transaction holds many row locks or blocks the event writers for long.
    """

    def __init__(self, store: Store, *, clock: Clock, days: int, batch: int = 500, max_batches: int = 200) -> None:
        self.store = store
        self.clock = clock
        self.retention = timedelta(days=days)
        self.batch = batch
        #: Per run; what is left waits for the next run (a first run on a large backlog stays bounded).
        self.max_batches = max_batches

    async def run_once(self) -> tuple[int, int]:
        """Prune in batches until nothing older is left (or ``max_batches``); (events, deliveries) deleted."""
        before = self.clock() - self.retention
        events = deliveries = 0
        for _ in range(self.max_batches):
            batch_events, batch_deliveries = await self.store.retention.prune_events(before=before, batch=self.batch)
            events += batch_events
            deliveries += batch_deliveries
            if batch_events < self.batch:
                break
            await anyio.sleep(0)  # let requests in between batches
        return events, deliveries

    async def run_forever(self, stop: anyio.Event, *, interval: float = 3600.0, first_delay: bool = False) -> None:
        """Prune every ``interval`` seconds until ``stop`` is set. Errors are logged, never fatal."""
        if first_delay:
            with anyio.move_on_after(interval):
                await stop.wait()
        while not stop.is_set():
            try:
                events, deliveries = await self.run_once()
                if events:
                    logger.info("pruned %d event(s) and %d webhook delivery(ies) past retention", events, deliveries)
            except AuthBridgeError as exc:
                logger.warning("pruning old events failed: %s", exc)
            except Exception:  # keep running; the error is logged
                logger.exception("pruning old events failed unexpectedly")
            with anyio.move_on_after(interval):
                await stop.wait()
