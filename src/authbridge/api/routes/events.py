"""``GET /events``: the event log, newest first, filtered. Events never hold a token."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

from fastapi import APIRouter, Query

from authbridge.api.deps import BrokerDep, ReadDep
from authbridge.api.errors import errors
from authbridge.broker import event_payload
from authbridge.errors import ErrorItem, ParameterError

__all__ = ["parse_event_cursor", "router"]

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
    until: typing.Annotated[
        datetime | None, Query(description="ISO 8601; events before this time (UTC when no offset is given).")
    ] = None,
    limit: typing.Annotated[int, Query(ge=1, le=500, description="Page size (1-500).")] = 100,
    cursor: typing.Annotated[
        str | None, Query(max_length=20, description="`next_cursor` of the previous page.")
    ] = None,
) -> dict[str, typing.Any]:
    """``{"items": [{"id", "type", "connection_id", "integration", "data", "created_at"}], "next_cursor"}``,
    newest first; pass ``next_cursor`` back for the next (older) page, null at the end."""
    since, until = _utc(since), _utc(until)
    before_id = parse_event_cursor(cursor)
    records = await broker.store.events.list(
        type=type,
        connection_id=connection_id,
        integration_key=integration,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit + 1,
    )
    more = len(records) > limit
    records = records[:limit]
    return {
        "items": [event_payload(r) for r in records],
        "next_cursor": str(records[-1].id) if more and records else None,
    }


def _utc(when: datetime | None) -> datetime | None:
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def parse_event_cursor(cursor: str | None) -> int | None:
    """The event id a cursor continues after; ParameterError when it is not one this server gave."""
    if not cursor:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise ParameterError([ErrorItem("cursor", "is not a cursor this server gave (pass next_cursor as it came)")])
    return int(cursor)
