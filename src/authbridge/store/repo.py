"""Repositories for integrations, API keys and events; the Store facade that holds them all."""

from __future__ import annotations

import builtins
import contextlib
import copy
import hashlib
import hmac
import json
import re
import secrets
import typing
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from sqlalchemy import Table, delete, func, insert, literal, select, true
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from authbridge.errors import ConflictError, ErrorItem, IntegrationNotFound, NotFoundError, SpecError, StoreError
from authbridge.spec import SECRET_MASK, Integration
from authbridge.spec.builtins import builtin_spec
from authbridge.spec.destinations import move_problems
from authbridge.store.crypto import KeyRing, aad_for
from authbridge.store.invalidations import invalidate
from authbridge.store.models import (
    ApiKeyRow,
    ClientRegistrationRow,
    ConnectionRow,
    EventRow,
    IntegrationRow,
    UTCDateTime,
    WebhookDeliveryRow,
    WebhookRow,
)
from authbridge.store.records import ApiKeyRecord, EventRecord, IntegrationRecord
from authbridge.types import Clock, JSONDict, utcnow

__all__ = ["ApiKeyRepo", "EventRepo", "IntegrationRepo", "StoreContext", "new_id", "queue_events"]

API_KEY_PREFIX = "ab_"


def new_id() -> str:
    """A random 128-bit identifier, 32 hex characters."""
    return uuid.uuid4().hex


class StoreContext:
    """What every repository shares: the session factory, the key ring and the clock."""

    def __init__(self, engine: AsyncEngine, keyring: KeyRing, *, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.keyring = keyring
        self.clock = clock
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success. Database failures become StoreError."""
        try:
            async with self.sessions.begin() as session:
                yield session
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"the database refused the operation ({type(exc).__name__})") from None

    def db_now(self, seconds: float = 0.0) -> typing.Any:
        """The database's clock (plus ``seconds``), as a SQL expression: leases never trust a worker's clock."""
        if self.engine.dialect.name == "sqlite":
            return func.strftime("%Y-%m-%d %H:%M:%f", "now", f"{seconds:+.3f} seconds")
        return func.clock_timestamp() + timedelta(seconds=seconds)

    def encrypt(self, value: str | None, table: str, row_id: str, column: str) -> str | None:
        """Encrypt one secret bound to its table, row and column."""
        if value is None:
            return None
        return self.keyring.encrypt(value, aad=aad_for(table, row_id, column))

    def steady(self) -> StoreContext:
        """This context with the key ring as it is now (``KeyRing.steady``), for the secrets of one batch."""
        steady = copy.copy(self)  # the same engine, sessions and clock
        steady.keyring = self.keyring.steady()
        return steady

    def decrypt(self, value: str | None, table: str, row_id: str, column: str) -> str | None:
        """Decrypt one secret; a ciphertext moved to another row or column fails."""
        if value is None:
            return None
        return self.keyring.decrypt_str(value, aad=aad_for(table, row_id, column))


_PARAM_REF = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def _storable_spec(spec: Integration) -> tuple[JSONDict, str | None, str | None]:
    """The spec as JSON without its secrets, the client secret and the client private key."""
    data = spec.model_dump(mode="json", by_alias=True)
    data["auth"].pop("client_secret", None)
    data["auth"].pop("client_private_key", None)
    return data, spec.client_secret, spec.client_private_key


class IntegrationRepo:
    """Integrations, with the client secret encrypted in its own column."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    def _record(self, row: IntegrationRow) -> IntegrationRecord:
        data = dict(row.spec)
        secret = self._ctx.decrypt(row.client_secret, "integrations", row.id, "client_secret")
        if secret is not None:
            data["auth"] = {**data["auth"], "client_secret": secret}
        key = self._ctx.decrypt(row.client_private_key, "integrations", row.id, "client_private_key")
        if key is not None:
            data["auth"] = {**data["auth"], "client_private_key": key}
        return IntegrationRecord(
            id=row.id,
            key=row.key,
            spec=Integration.model_validate(data),
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def get(self, key: str) -> IntegrationRecord:
        """The integration with this key, or IntegrationNotFound; a built-in one (``mcp``) is created on first use."""
        async with self._ctx.session() as session:
            row = await session.scalar(select(IntegrationRow).where(IntegrationRow.key == key))
            if row is not None:
                return self._record(row)
        builtin = builtin_spec(key)
        if builtin is None:
            raise IntegrationNotFound(f"no integration with key {key!r}")
        try:
            record, _created = await self.save(builtin, update=False)
        except ConflictError:  # another request created it first
            return await self.get(key)
        return record

    async def get_by_id(self, integration_id: str) -> IntegrationRecord:
        """The integration with this id, or IntegrationNotFound."""
        async with self._ctx.session() as session:
            row = await session.get(IntegrationRow, integration_id)
            if row is None:
                raise IntegrationNotFound(f"no integration with id {integration_id!r}")
            return self._record(row)

    async def list(self) -> list[IntegrationRecord]:
        """Every integration, by key."""
        async with self._ctx.session() as session:
            rows = (await session.scalars(select(IntegrationRow).order_by(IntegrationRow.key))).all()
            return [self._record(row) for row in rows]

    async def save(
        self, spec: Integration, *, create: bool = True, update: bool = True, move_secrets: bool = False
    ) -> tuple[IntegrationRecord, bool]:
        """Create or replace an integration; return it and whether it was created.

        A client secret equal to the mask (``********``) keeps the stored one, so a spec read back
        from the API or exported to YAML can be saved again without knowing the secret. An update
        that would send a stored secret somewhere new is refused with SpecError, nothing changed
        (``spec.destinations``): the kept client secret to a new host (give it again instead), or
        the secrets of existing connected accounts to a new host (unless ``move_secrets``, which
        only the server's operator can pass). Parameters that became ``secret: true`` have their
        stored values encrypted in the same transaction.
        """
        data, secret, private_key = _storable_spec(spec)
        now = self._ctx.clock()
        try:
            async with self._ctx.session() as session:
                row = await session.scalar(
                    select(IntegrationRow).where(IntegrationRow.key == spec.key).with_for_update()
                )
                created = row is None
                if row is None:
                    if not create:
                        raise IntegrationNotFound(f"no integration with key {spec.key!r}")
                    for name, value in (("client_secret", secret), ("client_private_key", private_key)):
                        if value == SECRET_MASK:
                            raise ConflictError(f"auth.{name}: give the secret itself, not ********")
                    row = IntegrationRow(id=new_id(), key=spec.key, version=1, created_at=now)
                    session.add(row)
                else:
                    if not update:
                        raise ConflictError(f"an integration with key {spec.key!r} exists already")
                    problems = await self._move_problems(session, row, spec, move_secrets=move_secrets)
                    if problems:
                        raise SpecError(problems)
                    row.version += 1
                    if secret == SECRET_MASK:
                        secret = self._ctx.decrypt(row.client_secret, "integrations", row.id, "client_secret")
                    if private_key == SECRET_MASK:
                        private_key = self._ctx.decrypt(
                            row.client_private_key, "integrations", row.id, "client_private_key"
                        )
                        if private_key is None:
                            raise ConflictError("auth.client_private_key: none is stored; give the key itself")
                    was_secret = {p.get("name") for p in row.spec.get("parameters", []) if p.get("secret")}
                    now_secret = {p.name for p in spec.parameters if p.secret}
                    await self._encrypt_secret_parameters(session, row.id, now_secret - was_secret)
                row.name, row.spec, row.updated_at = spec.name, data, now
                row.client_secret = self._ctx.encrypt(secret, "integrations", row.id, "client_secret")
                row.client_private_key = self._ctx.encrypt(private_key, "integrations", row.id, "client_private_key")
                if not created:
                    await invalidate(session, self._ctx, "integration", spec.key)
                await session.flush()
                return self._record(row), created
        except IntegrityError:
            raise ConflictError(f"an integration with key {spec.key!r} exists already") from None

    async def check_save(self, spec: Integration, *, move_secrets: bool = False) -> builtins.list[ErrorItem]:
        """The problems ``save`` would refuse ``spec`` for because it moves stored secrets (nothing is written)."""
        async with self._ctx.session() as session:
            row = await session.scalar(select(IntegrationRow).where(IntegrationRow.key == spec.key))
            if row is None:
                return []
            return await self._move_problems(session, row, spec, move_secrets=move_secrets)

    async def _move_problems(
        self, session: AsyncSession, row: IntegrationRow, spec: Integration, *, move_secrets: bool
    ) -> builtins.list[ErrorItem]:
        stored = self._ctx.decrypt(row.client_secret, "integrations", row.id, "client_secret")
        kept = spec.client_secret == SECRET_MASK and stored is not None and not _PARAM_REF.fullmatch(stored)
        count: int | None = 0
        if not move_secrets:
            count = await session.scalar(
                select(func.count()).select_from(ConnectionRow).where(ConnectionRow.integration_id == row.id)
            )
        return move_problems(self._record(row).spec, spec, client_secret_kept=kept, connections=count or 0)

    async def _encrypt_secret_parameters(self, session: AsyncSession, integration_id: str, names: set[str]) -> int:
        """Move the values of the parameters just declared secret from the clear column to the encrypted one.

        Runs in the transaction that saves the spec, so no reader ever sees the new spec with the
        values still in clear (connections created meanwhile read the stored spec: ConnectionRepo.create).
        The reverse (secret to not secret) moves nothing: values stored as secrets stay encrypted and
        masked. Returns how many connections changed.
        """
        if not names:
            return 0
        rows = (
            await session.scalars(select(ConnectionRow).where(ConnectionRow.integration_id == integration_id))
        ).all()
        changed = 0
        for conn in rows:
            moving = {k: v for k, v in conn.parameters.items() if k in names}
            if not moving:
                continue
            current = self._ctx.decrypt(conn.secret_parameters, "connections", conn.id, "secret_parameters")
            secrets_ = {**(json.loads(current) if current else {}), **moving}
            conn.secret_parameters = self._ctx.encrypt(
                json.dumps(secrets_), "connections", conn.id, "secret_parameters"
            )
            conn.parameters = {k: v for k, v in conn.parameters.items() if k not in names}
            changed += 1
        return changed

    async def delete(self, key: str) -> None:
        """Delete an integration that has no connected accounts."""
        async with self._ctx.session() as session:
            row = await session.scalar(select(IntegrationRow).where(IntegrationRow.key == key))
            if row is None:
                raise IntegrationNotFound(f"no integration with key {key!r}")
            count = await session.scalar(
                select(func.count()).select_from(ConnectionRow).where(ConnectionRow.integration_id == row.id)
            )
            if count:
                raise ConflictError(f"integration {key!r} has {count} connected account(s): delete them first")
            await session.delete(row)
            await session.execute(delete(ClientRegistrationRow).where(ClientRegistrationRow.integration_key == key))
            await invalidate(session, self._ctx, "integration", key)


def _hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


class ApiKeyRepo:
    """API keys: random, shown once, stored as SHA-256 (no slow hash needed for 256-bit keys)."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        #: Bumped by every revocation through this repository, so caches of verified keys can be dropped.
        self.generation = 0

    @staticmethod
    def _record(row: ApiKeyRow) -> ApiKeyRecord:
        return ApiKeyRecord(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
            scopes=tuple(row.scopes or ("admin",)),
        )

    async def create(self, name: str, scopes: typing.Sequence[str] = ("admin",)) -> tuple[str, ApiKeyRecord]:
        """Create a key with these scopes; return the key itself (to show once) and its record."""
        plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id=new_id(),
            name=name,
            prefix=plaintext[:10],
            key_hash=_hash_key(plaintext),
            created_at=self._ctx.clock(),
            scopes=list(scopes),
        )
        async with self._ctx.session() as session:
            session.add(row)
        return plaintext, self._record(row)

    async def list(self) -> list[ApiKeyRecord]:
        """Every key, newest first."""
        async with self._ctx.session() as session:
            rows = (await session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at.desc()))).all()
            return [self._record(r) for r in rows]

    async def revoke(self, ident: str) -> ApiKeyRecord:
        """Revoke the key whose id, name or displayed prefix is ``ident`` (exactly one must match)."""
        async with self._ctx.session() as session:
            rows = (
                await session.scalars(
                    select(ApiKeyRow).where(
                        (ApiKeyRow.id == ident) | (ApiKeyRow.prefix == ident) | (ApiKeyRow.name == ident)
                    )
                )
            ).all()
            live = [r for r in rows if r.revoked_at is None]
            if not live:
                raise NotFoundError(f"no active API key with id, prefix or name {ident!r}")
            if len(live) > 1:
                raise ConflictError(f"{len(live)} active keys match {ident!r}: give the id instead")
            live[0].revoked_at = self._ctx.clock()
            await invalidate(session, self._ctx, "api_key", live[0].id)
            self.generation += 1
            return self._record(live[0])

    async def verify(self, plaintext: str) -> ApiKeyRecord | None:
        """The record of a valid, unrevoked key, or None. Notes the last use at most once a minute."""
        if not plaintext.startswith(API_KEY_PREFIX):
            return None
        digest = _hash_key(plaintext)
        async with self._ctx.session() as session:
            row = await session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest))
            if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
                return None
            now = self._ctx.clock()
            if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
                row.last_used_at = now
            return self._record(row)


async def queue_events(session: AsyncSession, entries: typing.Sequence[JSONDict], now: datetime) -> int:
    """Append events (``type``, ``connection_id``, ``integration_key``, ``data``) and queue their webhook deliveries.

    In the caller's transaction: one multi-row INSERT of the events, one INSERT ... SELECT of a delivery
    per event and active webhook (what ``EventRepo.add`` does for one event). ``entries`` must not be empty.
    Returns how many events.
    """
    table = typing.cast(Table, EventRow.__table__)
    ids = (
        (await session.execute(insert(table).returning(table.c.id), [{**e, "created_at": now} for e in entries]))
        .scalars()
        .all()
    )
    await session.execute(
        insert(WebhookDeliveryRow).from_select(
            ["webhook_id", "event_id", "attempts", "next_attempt_at"],
            select(WebhookRow.id, EventRow.id, literal(0), literal(now, UTCDateTime()))
            .join(EventRow, true())
            .where(WebhookRow.disabled_at.is_(None), EventRow.id.in_(list(ids))),
        )
    )
    return len(ids)


class EventRepo:
    """The event log. Callers must never put a token in ``data``."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    async def add(
        self,
        type: str,
        *,
        connection_id: str | None = None,
        integration_key: str | None = None,
        data: JSONDict | None = None,
    ) -> EventRecord:
        """Append an event, and queue its delivery to every active webhook in the same transaction.

        An event of a connection that has an owner carries its ``end_user`` and ``organization``
        (looked up here unless ``data`` already has them: a deleted connection's caller passes them).
        """
        now = self._ctx.clock()
        data = dict(data or {})
        async with self._ctx.session() as session:
            if connection_id and "end_user" not in data:
                owner = (
                    await session.execute(
                        select(ConnectionRow.end_user, ConnectionRow.organization).where(
                            ConnectionRow.id == connection_id
                        )
                    )
                ).first()
                if owner is not None and (owner[0] or owner[1]):
                    data["end_user"], data["organization"] = owner[0], owner[1]
            row = EventRow(
                type=type, connection_id=connection_id, integration_key=integration_key, data=data, created_at=now
            )
            session.add(row)
            await session.flush()
            await session.execute(
                insert(WebhookDeliveryRow).from_select(
                    ["webhook_id", "event_id", "attempts", "next_attempt_at"],
                    select(
                        WebhookRow.id,
                        literal(row.id),
                        literal(0),
                        literal(now, UTCDateTime()),
                    ).where(WebhookRow.disabled_at.is_(None)),
                )
            )
        return EventRecord(row.id, row.type, row.connection_id, row.integration_key, row.data, row.created_at)

    async def add_audit(self, entries: typing.Sequence[EventRecord]) -> None:
        """Append audit events (token reads...) in one transaction, not delivered to webhooks.

        ``entries`` carry their own ``created_at`` (when it happened, not when it was written); ids are ignored.
        """
        if not entries:
            return
        # The table, not the mapped class: a plain executemany, without the ORM's per-row bulk work (a busy
        # token endpoint notes thousands of reads a second, and this runs on the event loop).
        table = typing.cast(Table, EventRow.__table__)
        async with self._ctx.session() as session:
            await session.execute(
                insert(table),
                [
                    {
                        "type": e.type,
                        "connection_id": e.connection_id,
                        "integration_key": e.integration_key,
                        "data": e.data,
                        "created_at": e.created_at,
                    }
                    for e in entries
                ],
            )

    async def list(
        self,
        *,
        type: str | None = None,
        connection_id: str | None = None,
        integration_key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Recent events, newest first, filtered; ``before_id`` continues a page (keyset on the id)."""
        query = _event_filter(select(EventRow), type, connection_id, integration_key, since, until)
        if before_id is not None:
            query = query.where(EventRow.id < before_id)
        async with self._ctx.session() as session:
            rows = (await session.scalars(query.order_by(EventRow.id.desc()).limit(limit))).all()
            return [EventRecord(r.id, r.type, r.connection_id, r.integration_key, r.data, r.created_at) for r in rows]

    async def count(
        self,
        *,
        type: str | None = None,
        connection_id: str | None = None,
        integration_key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many events the same filters select."""
        query = _event_filter(select(func.count(EventRow.id)), type, connection_id, integration_key, since, until)
        async with self._ctx.session() as session:
            return int(await session.scalar(query) or 0)

    async def prune(self, *, older_than: datetime) -> int:
        """Delete events older than a date; return how many."""
        async with self._ctx.session() as session:
            result = await session.execute(delete(EventRow).where(EventRow.created_at < older_than))
            return int(typing.cast(typing.Any, result).rowcount or 0)


def _event_filter(
    query: typing.Any,
    type: str | None,
    connection_id: str | None,
    integration_key: str | None,
    since: datetime | None,
    until: datetime | None,
) -> typing.Any:
    if type:
        query = query.where(EventRow.type == type)
    if connection_id:
        query = query.where(EventRow.connection_id == connection_id)
    if integration_key:
        query = query.where(EventRow.integration_key == integration_key)
    if since:
        query = query.where(EventRow.created_at >= since)
    if until:
        query = query.where(EventRow.created_at < until)
    return query
