"""Connect sessions: short-lived capabilities an application hands its end user's browser.

The token itself is never stored: only its SHA-256 (256 random bits need no slow hash). A session
completes at most one connection; using it is one conditional ``UPDATE``.
"""

from __future__ import annotations

import hashlib
import json
import typing
from datetime import datetime

from sqlalchemy import select, update

from authbridge.store.models import ConnectSessionRow
from authbridge.store.records import ConnectSessionRecord
from authbridge.store.repo import StoreContext, new_id

__all__ = ["ConnectSessionRepo", "session_token_hash"]


def session_token_hash(token: str) -> str:
    """The stored form of a connect-session token."""
    return hashlib.sha256(token.encode()).hexdigest()


class ConnectSessionRepo:
    """Stored connect sessions; fixed parameter values are encrypted (the backend may pass secrets)."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    def _record(self, row: ConnectSessionRow) -> ConnectSessionRecord:
        params = self._ctx.decrypt(row.parameters, "connect_sessions", row.id, "parameters")
        return ConnectSessionRecord(
            id=row.id,
            end_user=dict(row.end_user),
            organization=dict(row.organization) if row.organization else None,
            allowed_integrations=list(row.allowed_integrations) if row.allowed_integrations is not None else None,
            parameters=json.loads(params) if params else {},
            tags=dict(row.tags or {}),
            return_to=row.return_to,
            reconnect_id=row.reconnect_id,
            created_by=row.created_by,
            created_at=row.created_at,
            expires_at=row.expires_at,
            used_at=row.used_at,
            ended_at=row.ended_at,
            connection_id=row.connection_id,
        )

    async def create(
        self,
        token: str,
        *,
        end_user: typing.Mapping[str, str],
        organization: typing.Mapping[str, str] | None,
        allowed_integrations: typing.Sequence[str] | None,
        parameters: typing.Mapping[str, typing.Mapping[str, str]],
        tags: typing.Mapping[str, str],
        return_to: str | None,
        reconnect_id: str | None,
        created_by: str | None,
        expires_at: datetime,
    ) -> ConnectSessionRecord:
        """Store a new session under the hash of ``token``."""
        row_id = new_id()
        row = ConnectSessionRow(
            id=row_id,
            token_hash=session_token_hash(token),
            end_user=dict(end_user),
            organization=dict(organization) if organization else None,
            allowed_integrations=list(allowed_integrations) if allowed_integrations is not None else None,
            parameters=self._ctx.encrypt(
                json.dumps(parameters) if parameters else None, "connect_sessions", row_id, "parameters"
            ),
            tags=dict(tags) or None,
            return_to=return_to,
            reconnect_id=reconnect_id,
            created_by=created_by,
            created_at=self._ctx.clock(),
            expires_at=expires_at,
        )
        async with self._ctx.session() as session:
            session.add(row)
        return self._record(row)

    async def find(self, token: str) -> ConnectSessionRecord | None:
        """The session a token stands for (in any state), or None."""
        async with self._ctx.session() as session:
            row = await session.scalar(
                select(ConnectSessionRow).where(ConnectSessionRow.token_hash == session_token_hash(token))
            )
            return self._record(row) if row else None

    async def get(self, session_id: str) -> ConnectSessionRecord | None:
        """The session with this id, or None."""
        async with self._ctx.session() as session:
            row = await session.get(ConnectSessionRow, session_id)
            return self._record(row) if row else None

    async def end(self, token: str) -> ConnectSessionRecord | None:
        """End a session now (it stops working); None when the token is unknown."""
        now = self._ctx.clock()
        async with self._ctx.session() as session:
            row = await session.scalar(
                select(ConnectSessionRow).where(ConnectSessionRow.token_hash == session_token_hash(token))
            )
            if row is None:
                return None
            if row.ended_at is None:
                row.ended_at = now
            return self._record(row)

    async def set_pending(self, session_id: str, connection_id: str) -> None:
        """Remember the connection an unfinished authorization of this session made (replaced on a retry)."""
        async with self._ctx.session() as session:
            await session.execute(
                update(ConnectSessionRow)
                .where(ConnectSessionRow.id == session_id, ConnectSessionRow.used_at.is_(None))
                .values(connection_id=connection_id)
            )

    async def complete(self, session_id: str, connection_id: str) -> bool:
        """Mark an open session used by the connection it made; False when it was not open any more."""
        now = self._ctx.clock()
        async with self._ctx.session() as session:
            result = await session.execute(
                update(ConnectSessionRow)
                .where(
                    ConnectSessionRow.id == session_id,
                    ConnectSessionRow.used_at.is_(None),
                    ConnectSessionRow.ended_at.is_(None),
                    ConnectSessionRow.expires_at > now,
                )
                .values(used_at=now, connection_id=connection_id)
            )
            return bool(typing.cast(typing.Any, result).rowcount == 1)
