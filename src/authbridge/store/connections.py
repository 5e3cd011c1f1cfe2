"""Repositories for connected accounts, their credentials and pending OAuth flows."""

from __future__ import annotations

import base64
import binascii
import builtins
import collections
import contextlib
import dataclasses
import hashlib
import json
import typing
from datetime import datetime, timedelta

from sqlalchemy import Row, Table, and_, bindparam, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError

from authbridge.errors import ErrorItem, NotFoundError, ParameterError, StoreError, WrongBrowserError
from authbridge.store.invalidations import invalidate
from authbridge.store.models import (
    CacheInvalidationRow,
    ConnectionRow,
    ConnectionTagRow,
    CredentialRow,
    IntegrationRow,
    OAuthFlowRow,
)
from authbridge.store.records import ConnectionRecord, CredentialRecord, FlowRecord, RefreshOutcome
from authbridge.store.repo import StoreContext, new_id, queue_events

__all__ = ["ConnectionFilter", "ConnectionRepo", "CredentialRepo", "FlowRepo"]

CONNECTION_STATUSES = frozenset({"pending", "active", "needs_reauth", "revoked", "error"})


@dataclasses.dataclass(frozen=True)
class ConnectionFilter:
    """What ``ConnectionRepo.page`` selects; every field given must match."""

    integration_key: str | None = None
    status: str | None = None
    end_user_id: str | None = None
    organization_id: str | None = None
    #: ``(key, value)`` pairs: the connection must carry every one.
    tags: tuple[tuple[str, str], ...] = ()
    #: Part of the name (any case), or the whole id.
    search: str | None = None


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """An opaque position after the connection created at ``created_at`` with id ``row_id``."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor stands for; ParameterError when it is not one this server made."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, row_id = text.partition("|")
        created_at = datetime.fromisoformat(stamp)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ParameterError([_BAD_CURSOR]) from None
    if created_at.tzinfo is None or not row_id.isalnum() or len(row_id) > 32:
        raise ParameterError([_BAD_CURSOR])
    return created_at, row_id


_BAD_CURSOR = ErrorItem("cursor", "is not a cursor this server gave (pass next_cursor as it came)")


def _filtered(query: typing.Any, where: ConnectionFilter) -> typing.Any:
    """``query`` over connections joined to their integration, narrowed by ``where``."""
    query = query.join(IntegrationRow, IntegrationRow.id == ConnectionRow.integration_id)
    if where.integration_key:
        # By id, resolved first: the planner then walks (integration_id, created_at, id) in order.
        integration_id = select(IntegrationRow.id).where(IntegrationRow.key == where.integration_key)
        query = query.where(ConnectionRow.integration_id == integration_id.scalar_subquery())
    if where.status:
        query = query.where(ConnectionRow.status == where.status)
    if where.end_user_id:
        query = query.where(ConnectionRow.end_user_id == where.end_user_id)
    if where.organization_id:
        query = query.where(ConnectionRow.organization_id == where.organization_id)
    for key, value in where.tags:
        tagged = select(ConnectionTagRow.connection_id).where(
            ConnectionTagRow.key == key, ConnectionTagRow.value == value
        )
        query = query.where(ConnectionRow.id.in_(tagged))
    if where.search:
        words = where.search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(
            or_(func.lower(ConnectionRow.name).like(f"%{words}%", escape="\\"), ConnectionRow.id == where.search)
        )
    return query


#: A Core row of a table's columns: read like the ORM object (attribute per column), made for less.
_CoreRow: typing.TypeAlias = Row[*tuple[typing.Any, ...]]


def _batch_events(stored: typing.Iterable[RefreshOutcome]) -> list[dict[str, typing.Any]]:
    """The events of stored refresh results, each carrying its connection's owner as ``EventRepo.add`` does."""
    events = []
    for o in stored:
        owned = {"end_user": o.end_user, "organization": o.organization} if o.end_user or o.organization else {}
        for kind, data in o.events:
            events.append(
                {
                    "type": kind,
                    "connection_id": o.connection_id,
                    "integration_key": o.integration_key,
                    "data": {**data, **owned} if "end_user" not in data else data,
                }
            )
    return events


class _Sealed(typing.NamedTuple):
    """A ``CredentialRecord``'s secret columns as stored (``CredentialRepo._record`` opens them again)."""

    access_token: str | None
    refresh_token: str | None
    raw: str | None
    extra: str | None
    inputs: str | None


def _sealed(ctx: StoreContext, connection_id: str, creds: CredentialRecord) -> _Sealed:
    """Encrypt the credentials' secrets, each bound to its row and column; JSON fields as JSON, empty ones as NULL."""
    enc, table = ctx.encrypt, "credentials"
    return _Sealed(
        enc(creds.access_token, table, connection_id, "access_token"),
        enc(creds.refresh_token, table, connection_id, "refresh_token"),
        enc(json.dumps(creds.raw) if creds.raw else None, table, connection_id, "raw"),
        enc(json.dumps(creds.extra) if creds.extra else None, table, connection_id, "extra"),
        enc(json.dumps(creds.inputs) if creds.inputs else None, table, connection_id, "inputs"),
    )


#: ``store_refreshes`` on PostgreSQL (positional ``$n`` parameters, the driver's own style; arrays are
#: ``unnest``-ed into one row per result). The credentials' rows are locked in one order by every writer.
_PG_LOCK_CREDENTIALS = (
    "SELECT connection_id, version FROM credentials WHERE connection_id = ANY($1::varchar[])"
    " ORDER BY connection_id FOR UPDATE"
)
#: Everything a batch writes, in one statement (one round trip): data-modifying CTEs on distinct tables
#: (or distinct rows: ``released`` takes the stale ids only), each over the ``unnest``-ed result rows.
#: Credentials written only over the version read (the lock above makes the comparison hold; repeated all
#: the same); the connections' refresh facts, their leases given back if ``owner`` ($13) still holds them;
#: the stale ones' leases ($14) given back; a cache invalidation per stored result; the events ($15-$18),
#: in their order, and one delivery per event and active webhook from the ids their insert returns.
_PG_STORE_BATCH = (
    "WITH v AS ("
    " SELECT * FROM unnest($1::varchar[], $2::int[], $3::text[], $4::text[], $5::varchar[], $6::timestamptz[],"
    " $7::json[], $8::text[], $9::text[], $10::text[], $11::text[]) WITH ORDINALITY"
    " AS v(id, version, access_token, refresh_token, token_type, expires_at, scopes, raw, extra, inputs, warning, n)"
    "), credentials_written AS ("
    " UPDATE credentials AS c SET access_token = v.access_token, refresh_token = v.refresh_token,"
    " token_type = v.token_type, expires_at = v.expires_at, scopes = v.scopes, raw = v.raw, extra = v.extra,"
    " inputs = v.inputs, version = c.version + 1, updated_at = $12"
    " FROM v WHERE c.connection_id = v.id AND c.version = v.version"
    "), connections_written AS ("
    " UPDATE connections AS c SET refresh_failures = 0, next_refresh_at = NULL, last_error = NULL,"
    " last_refreshed_at = $12, expires_at = v.expires_at, warning = v.warning, status = 'active',"
    " updated_at = $12, version = c.version + 1,"
    " refresh_lease_until = CASE WHEN c.refresh_lease_owner = $13 THEN NULL ELSE c.refresh_lease_until END,"
    " refresh_lease_owner = CASE WHEN c.refresh_lease_owner = $13 THEN NULL ELSE c.refresh_lease_owner END"
    " FROM v WHERE c.id = v.id"
    "), released AS ("
    " UPDATE connections SET refresh_lease_until = NULL, refresh_lease_owner = NULL"
    " WHERE id = ANY($14::varchar[]) AND refresh_lease_owner = $13"
    "), invalidated AS ("
    " INSERT INTO cache_invalidations (kind, ref, created_at) SELECT 'connection', v.id, $12 FROM v ORDER BY v.n"
    "), added AS ("
    " INSERT INTO events (type, connection_id, integration_key, data, created_at)"
    " SELECT e.type, e.connection_id, e.integration_key, e.data, $12"
    " FROM unnest($15::varchar[], $16::varchar[], $17::varchar[], $18::json[]) WITH ORDINALITY"
    " AS e(type, connection_id, integration_key, data, n) ORDER BY e.n"
    " RETURNING id"
    ")"
    " INSERT INTO webhook_deliveries (webhook_id, event_id, attempts, next_attempt_at)"
    " SELECT w.id, added.id, 0, $12 FROM webhooks AS w CROSS JOIN added WHERE w.disabled_at IS NULL"
)
#: The columns ``_PG_CLAIM_WITH_CREDENTIALS`` returns for the connection (then the integration's key) ...
_ClaimedConnection = collections.namedtuple(
    "_ClaimedConnection",
    "id integration_id name status parameters secret_parameters last_error warning expires_at last_refreshed_at"
    " version created_at updated_at refresh_failures next_refresh_at end_user organization tags wanted_scopes",
)
#: ... and for its credentials, in the statement's order.
_ClaimedCredentials = collections.namedtuple(
    "_ClaimedCredentials",
    "connection_id access_token refresh_token token_type expires_at scopes raw extra inputs version updated_at",
)
#: ``claim_due_with_credentials`` on PostgreSQL: ``claim_due``'s statement (``claim_query`` picks, the
#: UPDATE leases on the database's clock) with the rows, integration keys and credentials it claimed
#: (their columns in the order of the two tuples above, which read them).
_PG_CLAIM_WITH_CREDENTIALS = (
    "WITH claimed AS ("  # noqa: S608 - the column names are the constants above, no input
    " UPDATE connections SET refresh_lease_until = clock_timestamp() + $5::interval, refresh_lease_owner = $6"
    " WHERE connections.id IN ("
    "  SELECT connections.id FROM connections"
    "  WHERE connections.status = 'active'"
    "  AND (connections.next_refresh_at IS NULL OR connections.next_refresh_at <= $1)"
    "  AND (connections.expires_at < $2 OR connections.last_refreshed_at < $3)"
    "  AND (connections.refresh_lease_until IS NULL OR connections.refresh_lease_until < clock_timestamp())"
    "  ORDER BY connections.expires_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
    " AND (connections.refresh_lease_until IS NULL OR connections.refresh_lease_until < clock_timestamp())"
    f" RETURNING {', '.join(f'connections.{name}' for name in _ClaimedConnection._fields)})"
    " SELECT claimed.*, integrations.key,"
    f" {', '.join(f'credentials.{name}' for name in _ClaimedCredentials._fields)}"
    " FROM claimed JOIN integrations ON integrations.id = claimed.integration_id"
    " LEFT OUTER JOIN credentials ON credentials.connection_id = claimed.id"
    " ORDER BY claimed.expires_at"
)
_PG_RELEASE_LEASES = (
    "UPDATE connections SET refresh_lease_until = NULL, refresh_lease_owner = NULL"
    " WHERE id = ANY($1::varchar[]) AND refresh_lease_owner = $2"
)


class ConnectionRepo:
    """Connected accounts. Secret parameter values live encrypted, as one JSON object, in their own column."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        #: PostgreSQL gets the refresher's batch statements written for it (``unnest`` arrays, one round trip).
        self._postgres = ctx.engine.dialect.name == "postgresql"

    def _record(
        self, row: ConnectionRow | _CoreRow | _ClaimedConnection, integration_key: str, ctx: StoreContext | None = None
    ) -> ConnectionRecord:
        """The record of a row: an ORM object, or a Core row of the table's columns (no ORM object made)."""
        secret_json = (ctx or self._ctx).decrypt(row.secret_parameters, "connections", row.id, "secret_parameters")
        secrets: dict[str, str] = json.loads(secret_json) if secret_json else {}
        return ConnectionRecord(
            id=row.id,
            integration_id=row.integration_id,
            integration_key=integration_key,
            name=row.name,
            status=row.status,
            parameters={**row.parameters, **secrets},
            secret_names=frozenset(secrets),
            last_error=row.last_error,
            warning=row.warning,
            expires_at=row.expires_at,
            last_refreshed_at=row.last_refreshed_at,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            refresh_failures=row.refresh_failures,
            next_refresh_at=row.next_refresh_at,
            end_user=row.end_user,
            organization=row.organization,
            tags=dict(row.tags or {}),
            wanted_scopes=tuple(row.wanted_scopes or ()),
        )

    async def create(
        self,
        *,
        integration_key: str,
        name: str,
        parameters: typing.Mapping[str, str],
        secret_names: typing.Collection[str] = (),
        status: str = "pending",
        end_user: typing.Mapping[str, str] | None = None,
        organization: typing.Mapping[str, str] | None = None,
        tags: typing.Mapping[str, str] | None = None,
    ) -> ConnectionRecord:
        """Store a new connected account for an existing integration."""
        if status not in CONNECTION_STATUSES:
            raise ValueError(f"unknown connection status {status!r}")
        now = self._ctx.clock()
        row_id = new_id()
        async with self._ctx.session() as session:
            # The stored spec's secret parameters count too, read under a key-share lock: a spec
            # update that just made a parameter secret (and encrypted the stored values) commits
            # first, and this connection's value is stored encrypted as well.
            found = (
                await session.execute(
                    select(IntegrationRow.id, IntegrationRow.spec)
                    .where(IntegrationRow.key == integration_key)
                    .with_for_update(key_share=True)
                )
            ).first()
            if found is None:
                raise NotFoundError(f"no integration with key {integration_key!r}")
            integration_id, spec = found
            names = set(secret_names) | {
                p["name"] for p in spec.get("parameters", []) if isinstance(p, dict) and p.get("secret")
            }
            plain = {k: v for k, v in parameters.items() if k not in names}
            secrets = {k: v for k, v in parameters.items() if k in names}
            row = ConnectionRow(
                id=row_id,
                integration_id=integration_id,
                name=name,
                status=status,
                parameters=plain,
                secret_parameters=self._ctx.encrypt(
                    json.dumps(secrets) if secrets else None, "connections", row_id, "secret_parameters"
                ),
                version=1,
                created_at=now,
                updated_at=now,
                end_user_id=end_user["id"] if end_user else None,
                end_user=dict(end_user) if end_user else None,
                organization_id=organization["id"] if organization else None,
                organization=dict(organization) if organization else None,
                tags=dict(tags) if tags else None,
            )
            session.add(row)
            await session.flush()
            for key, value in (tags or {}).items():
                session.add(ConnectionTagRow(connection_id=row_id, key=key, value=value))
            return self._record(row, integration_key)

    async def get(self, connection_id: str) -> ConnectionRecord:
        """The connection with this id, or NotFoundError."""
        async with self._ctx.session() as session:
            found = (
                await session.execute(
                    select(ConnectionRow, IntegrationRow.key)
                    .join(IntegrationRow, IntegrationRow.id == ConnectionRow.integration_id)
                    .where(ConnectionRow.id == connection_id)
                )
            ).first()
            if found is None:
                raise NotFoundError(f"no connection with id {connection_id!r}")
            return self._record(found[0], found[1])

    async def list(self, *, integration_key: str | None = None) -> list[ConnectionRecord]:
        """Every connection, oldest first, optionally of one integration."""
        query = select(ConnectionRow, IntegrationRow.key).join(
            IntegrationRow, IntegrationRow.id == ConnectionRow.integration_id
        )
        if integration_key:
            query = query.where(IntegrationRow.key == integration_key)
        async with self._ctx.session() as session:
            rows = (await session.execute(query.order_by(ConnectionRow.created_at, ConnectionRow.id))).all()
            return [self._record(row, key) for row, key in rows]

    async def count_by_status(self) -> dict[str, int]:
        """How many connections are in each status: one aggregate query, one row per status."""
        query = select(ConnectionRow.status, func.count()).group_by(ConnectionRow.status)
        async with self._ctx.session() as session:
            return {status: int(count) for status, count in (await session.execute(query)).all()}

    async def page(
        self, where: ConnectionFilter, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[builtins.list[ConnectionRecord], str | None]:
        """One page of connections, oldest first, and the cursor of the next page (None at the end).

        Keyset pagination on ``(created_at, id)``: a page costs the same however deep it is.
        """
        query = self.page_query(where, limit=limit, cursor=cursor)
        async with self._ctx.session() as session:
            rows = (await session.execute(query)).all()
        records = [self._record(row, key) for row, key in rows[:limit]]
        more = len(rows) > limit
        return records, encode_cursor(records[-1].created_at, records[-1].id) if more and records else None

    def page_query(self, where: ConnectionFilter, *, limit: int = 100, cursor: str | None = None) -> typing.Any:
        """The statement ``page`` runs (one row more than ``limit``, to know whether a next page exists)."""
        query = _filtered(select(ConnectionRow, IntegrationRow.key), where)
        if cursor:
            after, after_id = decode_cursor(cursor)
            # A row-value comparison: the index range starts at the cursor instead of filtering up to it.
            position = tuple_(literal(after, ConnectionRow.created_at.type), literal(after_id, ConnectionRow.id.type))
            query = query.where(tuple_(ConnectionRow.created_at, ConnectionRow.id) > position)
        return query.order_by(ConnectionRow.created_at, ConnectionRow.id).limit(limit + 1)

    async def edit(
        self, connection_id: str, *, name: str | None = None, parameters: typing.Mapping[str, str] | None = None
    ) -> None:
        """Rename a connection and/or replace its parameter values (secret ones encrypted), in place."""
        async with self._ctx.session() as session:
            row = await session.get(ConnectionRow, connection_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no connection with id {connection_id!r}")
            if name is not None:
                row.name = name
            if parameters is not None:
                spec = await session.scalar(
                    select(IntegrationRow.spec)
                    .where(IntegrationRow.id == row.integration_id)
                    .with_for_update(key_share=True)
                )
                names = {
                    p["name"] for p in (spec or {}).get("parameters", []) if isinstance(p, dict) and p.get("secret")
                }
                secrets = {k: v for k, v in parameters.items() if k in names}
                row.parameters = {k: v for k, v in parameters.items() if k not in names}
                row.secret_parameters = self._ctx.encrypt(
                    json.dumps(secrets) if secrets else None, "connections", row.id, "secret_parameters"
                )
            row.updated_at, row.version = self._ctx.clock(), row.version + 1
            await invalidate(session, self._ctx, "connection", connection_id)

    async def count_by_integration(self) -> dict[str, int]:
        """The number of connections of each integration key (those with none are absent)."""
        query = (
            select(IntegrationRow.key, func.count(ConnectionRow.id))
            .join(IntegrationRow, IntegrationRow.id == ConnectionRow.integration_id)
            .group_by(IntegrationRow.key)
        )
        async with self._ctx.session() as session:
            return {key: int(n) for key, n in (await session.execute(query)).all()}

    async def count(self, where: ConnectionFilter) -> int:
        """How many connections ``where`` selects (the total shown beside a page)."""
        async with self._ctx.session() as session:
            return int(await session.scalar(_filtered(select(func.count(ConnectionRow.id)), where)) or 0)

    async def set_status(
        self,
        connection_id: str,
        status: str,
        *,
        last_error: str | None = None,
        warning: str | None = None,
        expires_at: datetime | None = None,
        refreshed: bool = False,
    ) -> None:
        """Change a connection's status (and the facts that go with it); bumps its version."""
        if status not in CONNECTION_STATUSES:
            raise ValueError(f"unknown connection status {status!r}")
        now = self._ctx.clock()
        values: dict[str, typing.Any] = {
            "status": status,
            "last_error": last_error,
            "warning": warning,
            "expires_at": expires_at,
            "updated_at": now,
            "version": ConnectionRow.version + 1,
        }
        if refreshed:
            values["last_refreshed_at"] = now
        async with self._ctx.session() as session:
            result = await session.execute(
                update(ConnectionRow).where(ConnectionRow.id == connection_id).values(**values)
            )
            if not typing.cast(typing.Any, result).rowcount:
                raise NotFoundError(f"no connection with id {connection_id!r}")
            await invalidate(session, self._ctx, "connection", connection_id)

    async def want_scopes(self, connection_id: str, scopes: typing.Sequence[str], *, reason: str, version: int) -> bool:
        """Record the scopes a resource server asked for and mark the connection ``needs_reauth`` (reason as its
        error), unless it changed since ``version`` was read (a re-authorization meanwhile): then False."""
        async with self._ctx.session() as session:
            result = await session.execute(
                update(ConnectionRow)
                .where(ConnectionRow.id == connection_id, ConnectionRow.version == version)
                .values(
                    wanted_scopes=list(scopes),
                    status="needs_reauth",
                    last_error=reason,
                    updated_at=self._ctx.clock(),
                    version=ConnectionRow.version + 1,
                )
            )
            if not typing.cast(typing.Any, result).rowcount:
                return False
            await invalidate(session, self._ctx, "connection", connection_id)
        return True

    async def take_lease(self, connection_id: str, owner: str, duration: timedelta) -> bool:
        """Take the refresh lease of a connection if nobody holds a live one (one conditional UPDATE)."""
        async with self._ctx.session() as session:
            result = await session.execute(
                update(ConnectionRow)
                .where(
                    ConnectionRow.id == connection_id,
                    or_(
                        ConnectionRow.refresh_lease_until.is_(None),
                        ConnectionRow.refresh_lease_until < self._ctx.db_now(),
                        ConnectionRow.refresh_lease_owner == owner,
                    ),
                )
                .values(
                    refresh_lease_until=self._ctx.db_now(duration.total_seconds()),
                    refresh_lease_owner=owner,
                )
                .execution_options(synchronize_session=False)
            )
            return bool(typing.cast(typing.Any, result).rowcount)

    async def release_lease(self, connection_id: str, owner: str) -> None:
        """Give the lease back (only if we still hold it)."""
        async with self._ctx.session() as session:
            await session.execute(
                update(ConnectionRow)
                .where(ConnectionRow.id == connection_id, ConnectionRow.refresh_lease_owner == owner)
                .values(refresh_lease_until=None, refresh_lease_owner=None)
                .execution_options(synchronize_session=False)
            )

    async def release_leases(self, owner: str, *, keep: typing.Collection[str] = ()) -> int:
        """Give back every lease ``owner`` holds but those of ``keep`` (a process shutting down); how many."""
        async with self._ctx.session() as session:
            result = await session.execute(
                update(ConnectionRow)
                .where(ConnectionRow.refresh_lease_owner == owner, ConnectionRow.id.not_in(list(keep)))
                .values(refresh_lease_until=None, refresh_lease_owner=None)
                .execution_options(synchronize_session=False)
            )
            return int(typing.cast(typing.Any, result).rowcount)

    async def record_refresh(
        self,
        connection_id: str,
        *,
        ok: bool,
        status: str | None = None,
        last_error: str | None = None,
        warning: str | None = None,
        expires_at: datetime | None = None,
        next_refresh_at: datetime | None = None,
    ) -> ConnectionRecord:
        """Note a refresh outcome: success resets the failure count; failure counts and sets the back-off."""
        now = self._ctx.clock()
        async with self._ctx.session() as session:
            row = await session.get(ConnectionRow, connection_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no connection with id {connection_id!r}")
            if ok:
                row.refresh_failures, row.next_refresh_at, row.last_error = 0, None, None
                row.last_refreshed_at, row.expires_at, row.warning = now, expires_at, warning
                row.status = status or "active"
            else:
                row.refresh_failures += 1
                row.next_refresh_at, row.last_error = next_refresh_at, last_error
                if status:
                    row.status = status
            if status:
                await invalidate(session, self._ctx, "connection", connection_id)
            row.updated_at, row.version = now, row.version + 1
            key = await session.scalar(select(IntegrationRow.key).where(IntegrationRow.id == row.integration_id))
            return self._record(row, key or "")

    async def due_for_refresh(
        self, *, expiring_before: datetime, idle_before: datetime, limit: int
    ) -> builtins.list[ConnectionRecord]:
        """Active connections whose token expires before a time, or not refreshed since another; oldest first.

        Uses the index on ``expires_at``; skips those backing off after failures.
        """
        query = (
            select(ConnectionRow, IntegrationRow.key)
            .join(IntegrationRow, IntegrationRow.id == ConnectionRow.integration_id)
            .where(self._due_clause(expiring_before, idle_before))
            .order_by(ConnectionRow.expires_at)
            .limit(limit)
        )
        async with self._ctx.session() as session:
            rows = (await session.execute(query)).all()
            return [self._record(row, key) for row, key in rows]

    def _due_clause(self, expiring_before: datetime, idle_before: datetime) -> typing.Any:
        now = self._ctx.clock()
        return and_(
            ConnectionRow.status == "active",
            or_(ConnectionRow.next_refresh_at.is_(None), ConnectionRow.next_refresh_at <= now),
            or_(ConnectionRow.expires_at < expiring_before, ConnectionRow.last_refreshed_at < idle_before),
        )

    def claim_query(self, *, expiring_before: datetime, idle_before: datetime, limit: int) -> typing.Any:
        """The ids ``claim_due`` picks: due, no live lease, soonest expiry first, locked rows skipped (EXPLAIN it)."""
        free = or_(ConnectionRow.refresh_lease_until.is_(None), ConnectionRow.refresh_lease_until < self._ctx.db_now())
        return (
            select(ConnectionRow.id)
            .where(self._due_clause(expiring_before, idle_before), free)
            .order_by(ConnectionRow.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

    async def claim_due(
        self, owner: str, lease: timedelta, *, expiring_before: datetime, idle_before: datetime, limit: int
    ) -> builtins.list[ConnectionRecord]:
        """Take the refresh lease of up to ``limit`` due connections nobody holds; return them, soonest expiry first.

        One statement: the due rows without a live lease are picked (PostgreSQL: ``FOR UPDATE SKIP
        LOCKED``, so replicas claiming at once get disjoint batches; SQLite: its one writer at a time)
        and leased to ``owner`` on the database's clock. Rows another process holds are skipped, not
        waited for. Same selection as ``due_for_refresh``, which the partial indexes of migration
        0007 serve.
        """
        free = or_(ConnectionRow.refresh_lease_until.is_(None), ConnectionRow.refresh_lease_until < self._ctx.db_now())
        picked = self.claim_query(expiring_before=expiring_before, idle_before=idle_before, limit=limit)
        async with self._ctx.session() as session:
            claimed = (
                (
                    await session.execute(
                        update(ConnectionRow)
                        .where(ConnectionRow.id.in_(picked.scalar_subquery()), free)
                        .values(refresh_lease_until=self._ctx.db_now(lease.total_seconds()), refresh_lease_owner=owner)
                        .returning(ConnectionRow.id)
                        .execution_options(synchronize_session=False)
                    )
                )
                .scalars()
                .all()
            )
            if not claimed:
                return []
            # Core rows of the table's columns: a batch of ORM objects costs more than the statement.
            table = typing.cast(Table, ConnectionRow.__table__)
            rows = (
                await session.execute(
                    select(*table.c, IntegrationRow.key.label("integration_key"))
                    .join(IntegrationRow, IntegrationRow.id == table.c.integration_id)
                    .where(table.c.id.in_(claimed))
                    .order_by(table.c.expires_at)
                )
            ).all()
            return [self._record(row, row.integration_key) for row in rows]

    async def claim_due_with_credentials(
        self, owner: str, lease: timedelta, *, expiring_before: datetime, idle_before: datetime, limit: int
    ) -> builtins.list[tuple[ConnectionRecord, CredentialRecord | None]]:
        """``claim_due`` and the claimed connections' credentials (None: it has none), soonest expiry first.

        The same selection and leases as ``claim_due``. On PostgreSQL one statement takes the leases and
        returns the rows with their integration's key and their credentials (``WITH claimed AS (UPDATE ...
        RETURNING ...) SELECT ... LEFT JOIN credentials``): one round trip, no transaction around it.
        Elsewhere ``claim_due`` then ``CredentialRepo.load_many`` (should that fail, the leases are given
        back before the StoreError is raised). Nothing is claimed for a claim that raises.
        """
        if not self._postgres:
            claimed = await self.claim_due(
                owner, lease, expiring_before=expiring_before, idle_before=idle_before, limit=limit
            )
            if not claimed:
                return []
            ids = [c.id for c in claimed]
            async with self._given_back_on_failure(ids, owner):
                found = await CredentialRepo(self._ctx).load_many(ids)
            return [(c, found.get(c.id)) for c in claimed]
        params = (self._ctx.clock(), expiring_before, idle_before, limit, lease, owner)
        try:
            # One statement is a transaction of its own: no BEGIN and COMMIT round trips around it.
            async with self._ctx.engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                rows: typing.Sequence[typing.Any] = (
                    await autocommit.exec_driver_sql(_PG_CLAIM_WITH_CREDENTIALS, params)
                ).all()
        except SQLAlchemyError as exc:  # as StoreContext.session reports it
            raise StoreError(f"the database refused the operation ({type(exc).__name__})") from None
        async with self._given_back_on_failure([row[0] for row in rows], owner):  # a secret that does not decrypt
            return self._claimed_records(rows)

    @contextlib.asynccontextmanager
    async def _given_back_on_failure(self, ids: builtins.list[str], owner: str) -> typing.AsyncIterator[None]:
        """Should the block raise, nothing claimed is handed out: the leases go back (if the database lets them)."""
        try:
            yield
        except Exception:
            with contextlib.suppress(Exception):
                await self.release_lease_of(ids, owner)
            raise

    def _claimed_records(
        self, rows: typing.Sequence[typing.Any]
    ) -> builtins.list[tuple[ConnectionRecord, CredentialRecord | None]]:
        """The records of ``_PG_CLAIM_WITH_CREDENTIALS``'s rows, made by the repositories' own ``_record``.

        Each row is the claimed connection's columns, its integration's key, then its credentials'
        columns (all None without credentials); both halves are read by name as the ORM's rows are.
        """
        steady = self._ctx.steady()  # the key ring checked once for the batch
        credentials = CredentialRepo(self._ctx)
        width = len(_ClaimedConnection._fields)
        claimed_with: builtins.list[tuple[ConnectionRecord, CredentialRecord | None]] = []
        for row in rows:
            connection = _ClaimedConnection._make(row[:width])
            creds = _ClaimedCredentials._make(row[width + 1 :])
            claimed_with.append(
                (
                    self._record(connection, row[width], steady),
                    None if creds.connection_id is None else credentials._record(creds, steady),
                )
            )
        return claimed_with

    async def release_lease_of(self, connection_ids: typing.Collection[str], owner: str) -> None:
        """Give back the leases ``owner`` holds on these connections (claimed, then found not due)."""
        if not connection_ids:
            return
        async with self._ctx.session() as session:
            await session.execute(
                update(ConnectionRow)
                .where(ConnectionRow.id.in_(list(connection_ids)), ConnectionRow.refresh_lease_owner == owner)
                .values(refresh_lease_until=None, refresh_lease_owner=None)
                .execution_options(synchronize_session=False)
            )

    async def store_refreshes(
        self, owner: str, outcomes: typing.Sequence[RefreshOutcome]
    ) -> dict[str, CredentialRecord]:
        """Store a batch of refresh results in one transaction; return the stored ones by connection id.

        Each result is written only over the credentials' version it was made from (the rows are locked
        and compared first, and every UPDATE repeats the comparison): one whose connection got newer
        credentials meanwhile (another holder after a lost lease, a re-authorization) or lost them (a
        deletion) is left out, never written. For each stored one, as ``CredentialRepo.save`` and
        ``record_refresh(ok=True)`` do one at a time: the credentials (encrypted, version bumped), the
        cache invalidation, the connection's refresh facts, its events and their webhook deliveries.
        Every lease ``owner`` holds on these connections is given back, stored or not. A database
        failure rolls the whole batch back (StoreError): nothing of it is stored.

        On PostgreSQL the batch is written in one statement after the lock, its rows passed as arrays
        and ``unnest``-ed (no per-row parameter processing, no statement built per call, one round trip);
        elsewhere an executemany per table.
        """
        if self._postgres:
            return await self._store_refreshes_postgres(owner, outcomes)
        return await self._store_refreshes_portable(owner, outcomes)

    async def _store_refreshes_postgres(
        self, owner: str, outcomes: typing.Sequence[RefreshOutcome]
    ) -> dict[str, CredentialRecord]:
        """``store_refreshes`` on PostgreSQL: the lock, then one statement writing every table (``_PG_STORE_BATCH``)."""
        steady = self._ctx.steady()  # the key ring checked once for the batch
        now = self._ctx.clock()
        ids = [o.connection_id for o in outcomes]
        async with self._ctx.session() as session:
            connection = await session.connection()
            run = connection.exec_driver_sql  # no statement to build or compile, no per-row parameter processing
            locked = await run(_PG_LOCK_CREDENTIALS, (ids,))
            current: dict[str, int] = dict(typing.cast(typing.Any, locked.all()))
            fresh = [o for o in outcomes if current.get(o.connection_id) == o.version]
            stored = {o.connection_id for o in fresh}
            stale = [cid for cid in ids if cid not in stored]
            if fresh:
                columns: tuple[list[typing.Any], ...] = tuple([] for _ in range(11))
                fresh_ids, versions, access, refresh, types, expires, scopes, raws, extras, inputs, warnings = columns
                for o in fresh:
                    c, cid = o.credentials, o.connection_id
                    sealed = _sealed(steady, cid, c)
                    fresh_ids.append(cid)
                    versions.append(o.version)
                    access.append(sealed.access_token)
                    refresh.append(sealed.refresh_token)
                    types.append(c.token_type)
                    expires.append(c.expires_at)
                    scopes.append(json.dumps(c.scopes))  # as the JSON column stores it: None is JSON null
                    raws.append(sealed.raw)
                    extras.append(sealed.extra)
                    inputs.append(sealed.inputs)
                    warnings.append(o.warning)
                events: tuple[list[typing.Any], ...] = ([], [], [], [])
                event_types, event_connections, event_keys, event_data = events
                for event in _batch_events(fresh):
                    event_types.append(event["type"])
                    event_connections.append(event["connection_id"])
                    event_keys.append(event["integration_key"])
                    event_data.append(json.dumps(event["data"]))  # what the JSON column's own serializer writes
                await run(_PG_STORE_BATCH, (*columns, now, owner, stale, *events))
            elif stale:
                await run(_PG_RELEASE_LEASES, (stale, owner))
        return {o.connection_id: o.credentials.stored(o.version + 1, now) for o in fresh}

    async def _store_refreshes_portable(
        self, owner: str, outcomes: typing.Sequence[RefreshOutcome]
    ) -> dict[str, CredentialRecord]:
        """``store_refreshes`` in statements every backend runs (SQLite): executemany per table."""
        steady = self._ctx.steady()  # the key ring checked once for the batch
        now = self._ctx.clock()
        ids = [o.connection_id for o in outcomes]
        creds_table = typing.cast(Table, CredentialRow.__table__)
        conn_table = typing.cast(Table, ConnectionRow.__table__)
        async with self._ctx.session() as session:
            current = dict(
                (
                    await session.execute(
                        select(CredentialRow.connection_id, CredentialRow.version)
                        .where(CredentialRow.connection_id.in_(ids))
                        .order_by(CredentialRow.connection_id)  # one lock order for every writer
                        .with_for_update()
                    )
                ).all()
            )
            fresh = [o for o in outcomes if current.get(o.connection_id) == o.version]
            if fresh:
                credential_rows = []
                for o in fresh:
                    c, cid = o.credentials, o.connection_id
                    credential_rows.append(
                        {
                            "b_id": cid,
                            "b_version": o.version,
                            "token_type": c.token_type,
                            "expires_at": c.expires_at,
                            "scopes": c.scopes,
                            **_sealed(steady, cid, c)._asdict(),
                        }
                    )
                await session.execute(
                    update(creds_table)
                    .where(
                        creds_table.c.connection_id == bindparam("b_id"),
                        creds_table.c.version == bindparam("b_version"),
                    )
                    .values(
                        access_token=bindparam("access_token"),
                        refresh_token=bindparam("refresh_token"),
                        token_type=bindparam("token_type"),
                        expires_at=bindparam("expires_at"),
                        scopes=bindparam("scopes"),
                        raw=bindparam("raw"),
                        extra=bindparam("extra"),
                        inputs=bindparam("inputs"),
                        version=creds_table.c.version + 1,
                        updated_at=now,
                    ),
                    credential_rows,
                )
                await session.execute(
                    update(conn_table)
                    .where(conn_table.c.id == bindparam("b_id"))
                    .values(
                        refresh_failures=0,
                        next_refresh_at=None,
                        last_error=None,
                        last_refreshed_at=now,
                        expires_at=bindparam("expires_at"),
                        warning=bindparam("warning"),
                        status="active",
                        updated_at=now,
                        version=conn_table.c.version + 1,
                    ),
                    [
                        {"b_id": o.connection_id, "expires_at": o.credentials.expires_at, "warning": o.warning}
                        for o in fresh
                    ],
                )
                await session.execute(
                    insert(CacheInvalidationRow),
                    [{"kind": "connection", "ref": o.connection_id, "created_at": now} for o in fresh],
                )
                events = _batch_events(fresh)
                if events:
                    await queue_events(session, events, now)
            await session.execute(
                update(ConnectionRow)
                .where(ConnectionRow.id.in_(ids), ConnectionRow.refresh_lease_owner == owner)
                .values(refresh_lease_until=None, refresh_lease_owner=None)
                .execution_options(synchronize_session=False)
            )
        return {o.connection_id: o.credentials.stored(o.version + 1, now) for o in fresh}

    async def delete(self, connection_id: str) -> None:
        """Delete a connection with its credentials and pending flows."""
        async with self._ctx.session() as session:
            row = await session.get(ConnectionRow, connection_id)
            if row is None:
                raise NotFoundError(f"no connection with id {connection_id!r}")
            await session.delete(row)
            await invalidate(session, self._ctx, "connection", connection_id)


class CredentialRepo:
    """Credentials: every token and field encrypted, bound to the connection and column."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    async def save(
        self, connection_id: str, creds: CredentialRecord, *, expected_version: int | None = None
    ) -> CredentialRecord | None:
        """Store (replace) the credentials of a connection; return them with their new version.

        With ``expected_version``, write only if the stored version is still that one (a refresh
        result never overwrites a newer one); return None when it is not.
        """
        now = self._ctx.clock()
        async with self._ctx.session() as session:
            row = await session.get(CredentialRow, connection_id, with_for_update=expected_version is not None)
            if expected_version is not None and (row.version if row else 0) != expected_version:
                return None
            if row is None:
                row = CredentialRow(connection_id=connection_id, version=0)
                session.add(row)
            sealed = _sealed(self._ctx, connection_id, creds)
            row.access_token, row.refresh_token = sealed.access_token, sealed.refresh_token
            row.raw, row.extra, row.inputs = sealed.raw, sealed.extra, sealed.inputs
            row.token_type = creds.token_type
            row.expires_at = creds.expires_at
            row.scopes = creds.scopes
            row.version = (row.version or 0) + 1
            row.updated_at = now
            await invalidate(session, self._ctx, "connection", connection_id)
            return creds.stored(row.version, now)

    def _record(
        self, row: CredentialRow | _CoreRow | _ClaimedCredentials, ctx: StoreContext | None = None
    ) -> CredentialRecord:
        dec = (ctx or self._ctx).decrypt
        table, connection_id = "credentials", row.connection_id
        raw = dec(row.raw, table, connection_id, "raw")
        extra = dec(row.extra, table, connection_id, "extra")
        inputs = dec(row.inputs, table, connection_id, "inputs")
        return CredentialRecord(
            access_token=dec(row.access_token, table, connection_id, "access_token"),
            refresh_token=dec(row.refresh_token, table, connection_id, "refresh_token"),
            token_type=row.token_type,
            expires_at=row.expires_at,
            scopes=row.scopes,
            raw=json.loads(raw) if raw else {},
            extra=json.loads(extra) if extra else {},
            inputs=json.loads(inputs) if inputs else {},
            version=row.version,
            obtained_at=row.updated_at,
        )

    async def load(self, connection_id: str) -> CredentialRecord | None:
        """The credentials of a connection, decrypted, or None when it has none yet."""
        async with self._ctx.session() as session:
            row = await session.get(CredentialRow, connection_id)
            return None if row is None else self._record(row)

    async def load_many(self, connection_ids: typing.Collection[str]) -> dict[str, CredentialRecord]:
        """The credentials of several connections in one query, by connection id (those without are absent)."""
        if not connection_ids:
            return {}
        table = typing.cast(Table, CredentialRow.__table__)
        async with self._ctx.session() as session:
            # Core rows of the table's columns: no ORM object per row.
            rows = (
                await session.execute(select(*table.c).where(table.c.connection_id.in_(list(connection_ids))))
            ).all()
            steady = self._ctx.steady()  # the key ring checked once for the batch
            return {row.connection_id: self._record(row, steady) for row in rows}

    async def delete(self, connection_id: str) -> bool:
        """Forget a connection's credentials; return whether there were any."""
        async with self._ctx.session() as session:
            row = await session.get(CredentialRow, connection_id)
            if row is None:
                return False
            await session.delete(row)
            await invalidate(session, self._ctx, "connection", connection_id)
            return True


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class FlowRepo:
    """OAuth flow state, server-side: the state is stored hashed, used once, and expires."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    async def create(
        self,
        *,
        state: str,
        connection_id: str,
        code_verifier: str | None,
        redirect_uri: str,
        return_to: str | None = None,
        ttl: timedelta = timedelta(minutes=10),
        connect_session_id: str | None = None,
        browser_binding: str | None = None,
    ) -> None:
        """Remember a flow until its callback comes (or ``ttl`` passes).

        A flow with ``browser_binding`` (the SHA-256 of a cookie the starting browser holds) can only be
        consumed by a callback that presents the same.
        """
        digest = _state_hash(state)
        now = self._ctx.clock()
        async with self._ctx.session() as session:
            session.add(
                OAuthFlowRow(
                    state_hash=digest,
                    connection_id=connection_id,
                    code_verifier=self._ctx.encrypt(code_verifier, "oauth_flows", digest, "code_verifier"),
                    redirect_uri=redirect_uri,
                    return_to=return_to,
                    created_at=now,
                    expires_at=now + ttl,
                    connect_session_id=connect_session_id,
                    browser_binding=browser_binding,
                )
            )

    async def consume(self, state: str, browser_binding: str | None = None) -> FlowRecord | None:
        """Take a flow by its state, exactly once. None when unknown, already used or expired.

        A bound flow is taken only with its ``browser_binding``; with another (or none) it raises
        WrongBrowserError and stays unused, so the browser that started it can still finish it.
        """
        digest = _state_hash(state)
        now = self._ctx.clock()
        async with self._ctx.session() as session:
            result = await session.execute(
                update(OAuthFlowRow)
                .where(
                    OAuthFlowRow.state_hash == digest,
                    OAuthFlowRow.used_at.is_(None),
                    OAuthFlowRow.expires_at > now,
                    or_(OAuthFlowRow.browser_binding.is_(None), OAuthFlowRow.browser_binding == browser_binding),
                )
                .values(used_at=now)
            )
            if typing.cast(typing.Any, result).rowcount != 1:
                bound = await session.scalar(
                    select(OAuthFlowRow.browser_binding).where(
                        OAuthFlowRow.state_hash == digest, OAuthFlowRow.used_at.is_(None), OAuthFlowRow.expires_at > now
                    )
                )
                if bound is not None:
                    raise WrongBrowserError(
                        "this authorization was started in another browser: finish it there, or start again here"
                    )
                return None
            row = await session.get(OAuthFlowRow, digest)
            assert row is not None
            return FlowRecord(
                connection_id=row.connection_id,
                code_verifier=self._ctx.decrypt(row.code_verifier, "oauth_flows", digest, "code_verifier"),
                redirect_uri=row.redirect_uri,
                return_to=row.return_to,
                created_at=row.created_at,
                expires_at=row.expires_at,
                connect_session_id=row.connect_session_id,
            )
