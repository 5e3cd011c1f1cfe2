"""Persistence: SQLAlchemy 2 async models, repositories, Alembic migrations, AES-256-GCM secrets."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from authbridge.store.admin import AdminPasswordRepo
from authbridge.store.connect_sessions import ConnectSessionRepo
from authbridge.store.connections import ConnectionFilter, ConnectionRepo, CredentialRepo, FlowRepo
from authbridge.store.crypto import FileKeyRing, Key, KeyRing, format_key_ring, generate_key, parse_key_ring
from authbridge.store.db import create_engine, migrate, ping, redact_url
from authbridge.store.invalidations import Invalidation, InvalidationRepo
from authbridge.store.keys import KeyManager
from authbridge.store.records import (
    ApiKeyRecord,
    ConnectionRecord,
    ConnectSessionRecord,
    CredentialRecord,
    EventRecord,
    FlowRecord,
    IntegrationRecord,
    RefreshOutcome,
)
from authbridge.store.registrations import ClientRegistration, ClientRegistrationRepo
from authbridge.store.repo import ApiKeyRepo, EventRepo, IntegrationRepo, StoreContext
from authbridge.store.retention import RetentionRepo
from authbridge.store.sessions import ConsoleSessionRepo
from authbridge.store.webhooks import ClaimedDelivery, DeliveryRecord, WebhookRecord, WebhookRepo, check_webhook_url
from authbridge.types import Clock, utcnow

__all__ = [
    "AdminPasswordRepo",
    "ApiKeyRecord",
    "ClaimedDelivery",
    "ClientRegistration",
    "ConnectSessionRecord",
    "ConnectionFilter",
    "ConnectionRecord",
    "ConsoleSessionRepo",
    "CredentialRecord",
    "DeliveryRecord",
    "EventRecord",
    "FileKeyRing",
    "FlowRecord",
    "IntegrationRecord",
    "Invalidation",
    "Key",
    "KeyRing",
    "RefreshOutcome",
    "Store",
    "WebhookRecord",
    "check_webhook_url",
    "format_key_ring",
    "generate_key",
    "parse_key_ring",
    "redact_url",
]


class Store:
    """Every repository over one engine and key ring.

    ```
    store = await Store.open("sqlite+aiosqlite:///data/authbridge.db", keyring)
    record, created = await store.integrations.save(spec)
    await store.close()
    ```
    """

    def __init__(self, engine: AsyncEngine, keyring: KeyRing, *, clock: Clock = utcnow) -> None:
        self.ctx = StoreContext(engine, keyring, clock=clock)
        self.engine = engine
        self.integrations = IntegrationRepo(self.ctx)
        self.connections = ConnectionRepo(self.ctx)
        self.credentials = CredentialRepo(self.ctx)
        self.flows = FlowRepo(self.ctx)
        self.events = EventRepo(self.ctx)
        self.api_keys = ApiKeyRepo(self.ctx)
        self.keys = KeyManager(self.ctx)
        self.webhooks = WebhookRepo(self.ctx)
        self.admin = AdminPasswordRepo(self.ctx)
        self.invalidations = InvalidationRepo(self.ctx)
        self.console_sessions = ConsoleSessionRepo(self.ctx)
        self.connect_sessions = ConnectSessionRepo(self.ctx)
        self.retention = RetentionRepo(self.ctx)
        self.registrations = ClientRegistrationRepo(self.ctx)

    @classmethod
    async def open(cls, url: str, keyring: KeyRing, *, clock: Clock = utcnow, run_migrations: bool = True) -> Store:
        """Connect, migrate, and check that the key ring decrypts the stored data (else refuse)."""
        store = cls(create_engine(url), keyring, clock=clock)
        try:
            if run_migrations:
                await migrate(store.engine)
            await store.keys.verify()
        except BaseException:
            await store.close()
            raise
        return store

    async def ping(self) -> bool:
        """Whether the database answers."""
        return await ping(self.engine)

    async def close(self) -> None:
        """Release the engine's connections."""
        await self.engine.dispose()
