"""SQLAlchemy 2 table rows. Columns holding secrets carry ciphertext (``v1.<kid>.<data>``) only."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "SECRET_COLUMNS",
    "AdminPasswordRow",
    "ApiKeyRow",
    "Base",
    "CacheInvalidationRow",
    "ClientRegistrationRow",
    "ConnectSessionRow",
    "ConnectionRow",
    "ConnectionTagRow",
    "ConsoleSessionRow",
    "CredentialRow",
    "EventRow",
    "IntegrationRow",
    "KeyCanaryRow",
    "OAuthFlowRow",
    "UTCDateTime",
    "WebhookDeliveryRow",
    "WebhookRow",
]


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone: we add it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every AuthBridge table."""

    type_annotation_map: typing.ClassVar[dict[typing.Any, typing.Any]] = {
        datetime: UTCDateTime,
        dict[str, typing.Any]: JSON,
        list[str]: JSON,
    }


class IntegrationRow(Base):
    """An integration: its spec (secrets removed), its encrypted client secret and ``private_key_jwt`` key."""

    __tablename__ = "integrations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, typing.Any]]
    client_secret: Mapped[str | None] = mapped_column(Text)
    client_private_key: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


_ACTIVE = text("status = 'active'")


class ConnectionRow(Base):
    """A connected account: parameter values, status and the refresh lease."""

    __tablename__ = "connections"
    __table_args__ = (
        # The listing's keyset order, alone and after each equality filter (GET /connections at 100k rows).
        Index("ix_connections_created_at_id", "created_at", "id"),
        Index("ix_connections_integration_created", "integration_id", "created_at", "id"),
        Index("ix_connections_status_created", "status", "created_at", "id"),
        Index("ix_connections_integration_status_created", "integration_id", "status", "created_at", "id"),
        Index("ix_connections_end_user_created", "end_user_id", "created_at", "id"),
        # The refresher's scan: active rows by expiry, or by last refresh (idle refresh tokens).
        Index("ix_connections_active_expires", "expires_at", postgresql_where=_ACTIVE, sqlite_where=_ACTIVE),
        Index("ix_connections_active_refreshed", "last_refreshed_at", postgresql_where=_ACTIVE, sqlite_where=_ACTIVE),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: Not indexed alone: ix_connections_integration_created starts with it (migration 0012).
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    parameters: Mapped[dict[str, typing.Any]]
    secret_parameters: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    warning: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    last_refreshed_at: Mapped[datetime | None]
    refresh_lease_until: Mapped[datetime | None]
    refresh_lease_owner: Mapped[str | None] = mapped_column(String(64))
    refresh_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_refresh_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: Who owns the account: the application's end user and their organization (ids indexed for filters).
    end_user_id: Mapped[str | None] = mapped_column(String(255))  # ix_connections_end_user_created starts with it
    end_user: Mapped[dict[str, typing.Any] | None] = mapped_column(JSON)
    organization_id: Mapped[str | None] = mapped_column(String(255), index=True)
    organization: Mapped[dict[str, typing.Any] | None] = mapped_column(JSON)
    tags: Mapped[dict[str, typing.Any] | None] = mapped_column(JSON)
    #: Scopes a resource server asked for beyond the granted ones (``insufficient_scope``): the next
    #: authorization asks for them too.
    wanted_scopes: Mapped[list[str] | None] = mapped_column(JSON)


class ConnectionTagRow(Base):
    """One tag of a connection, in its own row so ``tag=key:value`` filters use an index on every backend."""

    __tablename__ = "connection_tags"
    __table_args__ = (Index("ix_connection_tags_key_value", "key", "value"),)

    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class ConnectSessionRow(Base):
    """A connect session: a short-lived capability for one end user, stored as the SHA-256 of its token."""

    __tablename__ = "connect_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    end_user: Mapped[dict[str, typing.Any]]
    organization: Mapped[dict[str, typing.Any] | None] = mapped_column(JSON)
    allowed_integrations: Mapped[list[str] | None] = mapped_column(JSON)
    #: The backend's fixed parameter values, ``{integration: {name: value}}``, encrypted (they may be secret).
    parameters: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, typing.Any] | None] = mapped_column(JSON)
    return_to: Mapped[str | None] = mapped_column(Text)
    reconnect_id: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    connection_id: Mapped[str | None] = mapped_column(String(32))


class CredentialRow(Base):
    """The credentials of one connection; every value but the metadata is encrypted."""

    __tablename__ = "credentials"

    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    token_type: Mapped[str | None] = mapped_column(String(40))
    expires_at: Mapped[datetime | None]
    scopes: Mapped[list[str] | None] = mapped_column(JSON)
    raw: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[str | None] = mapped_column(Text)
    inputs: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    updated_at: Mapped[datetime]


class OAuthFlowRow(Base):
    """A pending authorization: the state (hashed), PKCE verifier (encrypted), single use, 10 minutes."""

    __tablename__ = "oauth_flows"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    code_verifier: Mapped[str | None] = mapped_column(Text)
    redirect_uri: Mapped[str] = mapped_column(Text)
    return_to: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    #: A flow started from a connect page: its session, and the SHA-256 of the browser's binding cookie.
    connect_session_id: Mapped[str | None] = mapped_column(String(32))
    browser_binding: Mapped[str | None] = mapped_column(String(64))


class EventRow(Base):
    """Something that happened to a connection or integration. Never holds a token."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_connection_created", "connection_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    connection_id: Mapped[str | None] = mapped_column(String(32))
    integration_key: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, typing.Any]]
    created_at: Mapped[datetime] = mapped_column(index=True)


class ApiKeyRow(Base):
    """An API key, stored as its SHA-256 (the key itself is random, 256 bits)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    #: What the key may do (``admin`` is everything); keys made before scopes existed are ``admin``.
    scopes: Mapped[list[str]] = mapped_column(JSON, server_default='["admin"]')


class WebhookRow(Base):
    """A URL that receives every event, signed with HMAC-SHA256 under its own secret (encrypted)."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class WebhookDeliveryRow(Base):
    """One event to deliver to one webhook: retried with backoff until delivered or given up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_pending", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None]


class KeyCanaryRow(Base):
    """One known plaintext per encryption key, so a wrong key ring is caught at start."""

    __tablename__ = "key_canaries"

    kid: Mapped[str] = mapped_column(String(32), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


#: Every encrypted column: (table, primary-key column, secret column).
class ClientRegistrationRow(Base):
    """An OAuth client AuthBridge registered itself (RFC 7591), per integration and registration endpoint.

    ``id`` is the SHA-256 of the integration key and the endpoint, so each server gets one client and
    concurrent registrations of the same one collide on the key (the first wins).
    """

    __tablename__ = "client_registrations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    integration_key: Mapped[str] = mapped_column(String(64), index=True)
    endpoint: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str] = mapped_column(Text)
    client_secret: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


SECRET_COLUMNS: tuple[tuple[type[Base], str, str], ...] = (
    (IntegrationRow, "id", "client_secret"),
    (IntegrationRow, "id", "client_private_key"),
    (ConnectionRow, "id", "secret_parameters"),
    (CredentialRow, "connection_id", "access_token"),
    (CredentialRow, "connection_id", "refresh_token"),
    (CredentialRow, "connection_id", "raw"),
    (CredentialRow, "connection_id", "extra"),
    (CredentialRow, "connection_id", "inputs"),
    (OAuthFlowRow, "state_hash", "code_verifier"),
    (ConnectSessionRow, "id", "parameters"),
    (WebhookRow, "id", "secret"),
    (ClientRegistrationRow, "id", "client_secret"),
)


class AdminPasswordRow(Base):
    """The console's admin password (one row, ``id = "admin"``), stored as an scrypt hash."""

    __tablename__ = "admin_password"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    password_hash: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class CacheInvalidationRow(Base):
    """A change that other processes' caches must drop, written in the transaction of the change itself.

    ``kind`` is ``api_key`` (``ref`` = the key's id), ``connection`` (its id: credentials written, deleted or
    its status changed) or ``integration`` (its key). Ids only grow (AUTOINCREMENT on SQLite, a sequence on
    PostgreSQL), so each process reads what is new since the last id it saw.
    """

    __tablename__ = "cache_invalidations"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(index=True)


class ConsoleSessionRow(Base):
    """A live console session: the SHA-256 of its id (the cookie holds the id); gone at sign-out or expiry."""

    __tablename__ = "console_sessions"

    sid_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
