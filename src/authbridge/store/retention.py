"""Pruning of old events and their webhook deliveries, in bounded batches."""

from __future__ import annotations

import typing
from datetime import datetime

from sqlalchemy import delete, exists, select

from authbridge.store.models import EventRow, WebhookDeliveryRow
from authbridge.store.repo import StoreContext

__all__ = ["RetentionRepo"]


class RetentionRepo:
    """Deletes what is older than the retention period.

    ```
    events, deliveries = await store.retention.prune_events(before=cutoff, batch=500)
    ```
    """

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    async def prune_events(self, *, before: datetime, batch: int) -> tuple[int, int]:
        """Delete up to ``batch`` events created before ``before``, with their webhook deliveries, in one transaction.

        A delivery of such an event goes too, whatever its state (a delivery pending for the whole
        retention period is long given up on), except one a worker holds a live lease on right now:
        that event waits for the next batch. Returns (events, deliveries) deleted; fewer events than
        ``batch`` means nothing older is left.
        """
        d = WebhookDeliveryRow
        in_delivery = exists().where(
            d.event_id == EventRow.id, d.lease_until.is_not(None), d.lease_until >= self._ctx.db_now()
        )
        async with self._ctx.session() as session:
            ids = list(
                (
                    await session.scalars(
                        select(EventRow.id)
                        .where(EventRow.created_at < before, ~in_delivery)
                        .order_by(EventRow.id)
                        .limit(batch)
                    )
                ).all()
            )
            if not ids:
                return 0, 0
            deliveries = await session.execute(
                delete(d).where(d.event_id.in_(ids)).execution_options(synchronize_session=False)
            )
            events = await session.execute(
                delete(EventRow).where(EventRow.id.in_(ids)).execution_options(synchronize_session=False)
            )
            return int(typing.cast(typing.Any, events).rowcount), int(typing.cast(typing.Any, deliveries).rowcount)
