"""Webhooks and their delivery queue: one row per (event, webhook), claimed under a lease, retried until done.

`EventRepo.add` enqueues a delivery for every active webhook in the event's own transaction, so an
event is never stored without its deliveries. Workers (the dispatcher, on any number of replicas)
take due deliveries with `WebhookRepo.claim_due`, one conditional UPDATE: a delivery is claimed by
one worker at a time, and a lease left by a dead worker expires on the database's clock.
"""

from __future__ import annotations

import builtins
import dataclasses
import secrets
import typing
import urllib.parse
from datetime import datetime, timedelta

from sqlalchemy import case, func, or_, select, update

from authbridge.errors import ConfigError, NotFoundError
from authbridge.store.models import EventRow, WebhookDeliveryRow, WebhookRow
from authbridge.store.records import EventRecord
from authbridge.store.repo import StoreContext, new_id

__all__ = [
    "ClaimedDelivery",
    "DeliveryRecord",
    "WebhookRecord",
    "WebhookRepo",
    "check_webhook_url",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


@dataclasses.dataclass(frozen=True)
class WebhookRecord:
    """A webhook and how its deliveries stand. The signing secret is shown once, at creation."""

    id: str
    url: str
    created_at: datetime
    disabled_at: datetime | None = None
    pending: int = 0
    delivered: int = 0
    failed: int = 0


@dataclasses.dataclass(frozen=True)
class DeliveryRecord:
    """One event's delivery to one webhook."""

    id: int
    webhook_id: str
    event_id: int
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    last_error: str | None


@dataclasses.dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this worker holds the lease of: everything needed to send it. ``secret`` is in clear."""

    id: int
    webhook_id: str
    url: str
    secret: str = dataclasses.field(repr=False)
    #: Attempts so far, this one included (counted when claimed, so a worker dying mid-send still counts).
    attempts: int
    event: EventRecord


def check_webhook_url(url: str) -> str:
    """The URL, if it is an absolute ``http``/``https`` URL with a host and no userinfo; else ConfigError."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError("the webhook URL cannot be parsed; give an http:// or https:// URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("the webhook URL must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("the webhook URL may not contain a user name or password")
    return url.strip()


def _record(row: WebhookRow, counts: tuple[int, int, int] = (0, 0, 0)) -> WebhookRecord:
    return WebhookRecord(row.id, row.url, row.created_at, row.disabled_at, *counts)


class WebhookRepo:
    """Webhook URLs (their secrets encrypted) and the queue of deliveries to them."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    # -- webhooks -----------------------------------------------------------------------------

    async def add(self, url: str) -> tuple[WebhookRecord, str]:
        """Register a URL; return its record and its signing secret (``whsec_...``, to show once)."""
        url = check_webhook_url(url)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        row_id = new_id()
        row = WebhookRow(
            id=row_id,
            url=url,
            secret=self._ctx.encrypt(secret, "webhooks", row_id, "secret"),
            created_at=self._ctx.clock(),
        )
        async with self._ctx.session() as session:
            session.add(row)
        return _record(row), secret

    async def list(self) -> builtins.list[WebhookRecord]:
        """Every webhook, oldest first, with its delivery counts."""
        delivery = WebhookDeliveryRow
        counts = (
            select(
                delivery.webhook_id,
                func.sum(case((delivery.delivered_at.is_(None) & delivery.failed_at.is_(None), 1), else_=0)).label(
                    "pending"
                ),
                func.sum(case((delivery.delivered_at.is_not(None), 1), else_=0)).label("delivered"),
                func.sum(case((delivery.failed_at.is_not(None), 1), else_=0)).label("failed"),
            )
            .group_by(delivery.webhook_id)
            .subquery()
        )
        query = (
            select(WebhookRow, counts.c.pending, counts.c.delivered, counts.c.failed)
            .outerjoin(counts, counts.c.webhook_id == WebhookRow.id)
            .order_by(WebhookRow.created_at, WebhookRow.id)
        )
        async with self._ctx.session() as session:
            rows = (await session.execute(query)).all()
            return [_record(row, (int(p or 0), int(d or 0), int(f or 0))) for row, p, d, f in rows]

    async def backlog(self) -> int:
        """How many deliveries are neither delivered nor given up (one count query)."""
        delivery = WebhookDeliveryRow
        query = select(func.count()).where(delivery.delivered_at.is_(None) & delivery.failed_at.is_(None))
        async with self._ctx.session() as session:
            return int((await session.execute(query)).scalar_one())

    async def remove(self, webhook_id: str) -> None:
        """Delete a webhook and its pending deliveries (the events stay)."""
        async with self._ctx.session() as session:
            row = await session.get(WebhookRow, webhook_id)
            if row is None:
                raise NotFoundError(f"no webhook with id {webhook_id!r}")
            await session.delete(row)

    # -- deliveries ---------------------------------------------------------------------------

    async def deliveries(
        self, *, webhook_id: str | None = None, event_id: int | None = None, limit: int = 100
    ) -> builtins.list[DeliveryRecord]:
        """Deliveries, newest first, optionally of one webhook or one event."""
        query = select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id.desc()).limit(limit)
        if webhook_id is not None:
            query = query.where(WebhookDeliveryRow.webhook_id == webhook_id)
        if event_id is not None:
            query = query.where(WebhookDeliveryRow.event_id == event_id)
        async with self._ctx.session() as session:
            rows = (await session.scalars(query)).all()
            return [
                DeliveryRecord(
                    r.id,
                    r.webhook_id,
                    r.event_id,
                    r.attempts,
                    r.next_attempt_at,
                    r.delivered_at,
                    r.failed_at,
                    r.last_error,
                )
                for r in rows
            ]

    async def claim_due(
        self, *, now: datetime | None = None, limit: int = 50, lease: timedelta = timedelta(minutes=1)
    ) -> builtins.list[ClaimedDelivery]:
        """Take up to ``limit`` due deliveries (oldest first) for ``lease``; count an attempt on each.

        Due means not delivered, not given up, ``next_attempt_at <= now`` (the store's clock by
        default) and no live lease. One UPDATE ... RETURNING takes them, so concurrent workers never
        get the same delivery; PostgreSQL also skips rows another worker is locking.
        """
        now = now or self._ctx.clock()
        d = WebhookDeliveryRow
        lease_free = or_(d.lease_until.is_(None), d.lease_until < self._ctx.db_now())
        due = (
            select(d.id)
            .join(WebhookRow, WebhookRow.id == d.webhook_id)
            .where(
                d.delivered_at.is_(None),
                d.failed_at.is_(None),
                d.next_attempt_at <= now,
                WebhookRow.disabled_at.is_(None),
                lease_free,
            )
            .order_by(d.next_attempt_at, d.id)
            .limit(limit)
        )
        if self._ctx.engine.dialect.name == "postgresql":
            due = due.with_for_update(of=d, skip_locked=True)
        claim = (
            update(d)
            .where(d.id.in_(due.scalar_subquery()), lease_free, d.delivered_at.is_(None), d.failed_at.is_(None))
            .values(lease_until=self._ctx.db_now(lease.total_seconds()), attempts=d.attempts + 1)
            .returning(d.id)
            .execution_options(synchronize_session=False)
        )
        async with self._ctx.session() as session:
            ids = list((await session.scalars(claim)).all())
            if not ids:
                return []
            rows = (
                await session.execute(
                    select(d.id, d.attempts, WebhookRow, EventRow)
                    .join(WebhookRow, WebhookRow.id == d.webhook_id)
                    .join(EventRow, EventRow.id == d.event_id)
                    .where(d.id.in_(ids))
                    .order_by(d.next_attempt_at, d.id)
                )
            ).all()
            return [
                ClaimedDelivery(
                    id=delivery_id,
                    webhook_id=hook.id,
                    url=hook.url,
                    secret=self._ctx.decrypt(hook.secret, "webhooks", hook.id, "secret") or "",
                    attempts=attempts,
                    event=EventRecord(ev.id, ev.type, ev.connection_id, ev.integration_key, ev.data, ev.created_at),
                )
                for delivery_id, attempts, hook, ev in rows
            ]

    async def mark_delivered(self, delivery_id: int) -> None:
        """Note a delivery as done and release its lease."""
        await self._finish(delivery_id, delivered_at=self._ctx.clock(), last_error=None, lease_until=None)

    async def mark_failed(self, delivery_id: int, error: str, next_attempt_at: datetime | None) -> None:
        """Note a failed attempt: retry at ``next_attempt_at``, or give up (``failed_at``) when it is None."""
        values: dict[str, typing.Any] = {"last_error": error[:500], "lease_until": None}
        if next_attempt_at is None:
            values["failed_at"] = self._ctx.clock()
        else:
            values["next_attempt_at"] = next_attempt_at
        await self._finish(delivery_id, **values)

    async def _finish(self, delivery_id: int, **values: typing.Any) -> None:
        async with self._ctx.session() as session:
            await session.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == delivery_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
