"""``GET /events``: the event log, newest first, filtered. Events never hold a token."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

from fastapi import APIRouter, Query

from authbridge.api.deps import BrokerDep, ReadDep
from authbridge.api.errors import errors
from authbridge.broker import event_payload

__all__ = ["router"]

router = APIRouter(tags=["events"])


@router.get("/events", summary="List events", responses=errors())
async def list_events(
    broker: BrokerDep,
    _caller: ReadDep,
    type: typing.Annotated[str | None, Query(description="Only this type, e.g. connection.refreshed.")] = None,
    connection_id: typing.Annotated[str | None, Query(description="Only this connection's events.")] = None,
    integration: typing.Annotated[str | None, Query(description="Only this integration's events (its key).")] = None,
    since: typing.Annotated[
        datetime | None, Query(description="ISO 8601; events at or after this time (UTC when no offset is given).")
    ] = None,
    limit: typing.Annotated[int, Query(ge=1, le=500, description="At most this many (1-500).")] = 100,
) -> dict[str, typing.Any]:
    """``{"items": [{"id", "type", "connection_id", "integration", "data", "created_at"}]}``, newest first."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    records = await broker.store.events.list(
        type=type, connection_id=connection_id, integration_key=integration, since=since, limit=limit
    )
    return {"items": [event_payload(r) for r in records]}
