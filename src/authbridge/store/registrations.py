"""OAuth clients AuthBridge registered itself (RFC 7591): one per integration and registration endpoint.

The client secret is encrypted like every other secret (AAD: table, row id, column) and re-encrypted
by key rotation. Two processes registering the same client at once both reach the server, but
only the first row is kept and both use it (``save`` returns the row that won).
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from authbridge.store.models import ClientRegistrationRow
from authbridge.store.repo import StoreContext

__all__ = ["ClientRegistration", "ClientRegistrationRepo"]


@dataclasses.dataclass(frozen=True)
class ClientRegistration:
    """A registered client: its id, its secret (None for a public client), when the secret expires."""

    client_id: str
    client_secret: str | None = dataclasses.field(repr=False)
    expires_at: datetime | None = None


def _row_id(integration_key: str, endpoint: str) -> str:
    return hashlib.sha256(f"{integration_key}\n{endpoint}".encode()).hexdigest()


class ClientRegistrationRepo:
    """Read, keep and forget registered clients."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    def _record(self, row: ClientRegistrationRow) -> ClientRegistration:
        secret = self._ctx.decrypt(row.client_secret, "client_registrations", row.id, "client_secret")
        return ClientRegistration(row.client_id, secret, row.expires_at)

    async def get(self, integration_key: str, endpoint: str) -> ClientRegistration | None:
        """The client registered for this integration at this endpoint, if any."""
        async with self._ctx.session() as session:
            row = await session.get(ClientRegistrationRow, _row_id(integration_key, endpoint))
            return self._record(row) if row is not None else None

    async def save(
        self, integration_key: str, endpoint: str, registration: ClientRegistration, *, replace: bool = False
    ) -> ClientRegistration:
        """Keep a new registration; the one kept (another process's, when it saved first and ``replace`` is off)."""
        row_id = _row_id(integration_key, endpoint)
        row = ClientRegistrationRow(
            id=row_id,
            integration_key=integration_key,
            endpoint=endpoint,
            client_id=registration.client_id,
            client_secret=self._ctx.encrypt(
                registration.client_secret, "client_registrations", row_id, "client_secret"
            ),
            expires_at=registration.expires_at,
            created_at=self._ctx.clock(),
        )
        try:
            async with self._ctx.session() as session:
                if replace:
                    await session.execute(delete(ClientRegistrationRow).where(ClientRegistrationRow.id == row_id))
                session.add(row)
        except IntegrityError:
            async with self._ctx.session() as session:
                kept = await session.scalar(select(ClientRegistrationRow).where(ClientRegistrationRow.id == row_id))
                if kept is not None:
                    return self._record(kept)
            raise
        return registration
