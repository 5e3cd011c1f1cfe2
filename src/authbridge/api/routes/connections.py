"""Connected accounts over HTTP: create (with the authorize URL), list, show, delete, token, test, refresh."""

from __future__ import annotations

import typing
from datetime import datetime

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from authbridge.api.deps import BrokerDep, ReadDep, TokenDep, WriteDep
from authbridge.api.errors import errors
from authbridge.api.token_route import read_token
from authbridge.broker import ConnectionFilter, ConnectionRecord, Owner
from authbridge.errors import ErrorItem, ParameterError

__all__ = ["EndUser", "Organization", "Tags", "owner_of", "router"]

router = APIRouter(prefix="/connections", tags=["connections"])

TAG_KEY = r"^[A-Za-z0-9_.\-]{1,100}$"
Tags = typing.Annotated[
    dict[
        typing.Annotated[str, StringConstraints(pattern=TAG_KEY)],
        typing.Annotated[str, StringConstraints(max_length=255)],
    ],
    Field(max_length=50, description="Up to 50 tags: key (letters, digits, _ . -) to value (up to 255 characters)."),
]


class EndUser(BaseModel):
    """The application's end user who owns the account."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=255, description="Your id for the user.")
    email: str | None = Field(default=None, max_length=320)
    display_name: str | None = Field(default=None, max_length=255)


class Organization(BaseModel):
    """The end user's organization (your customer)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=255)
    display_name: str | None = Field(default=None, max_length=255)


def owner_of(end_user: EndUser | None, organization: Organization | None, tags: dict[str, str] | None) -> Owner:
    """The broker's view of who owns a connection (unset fields left out)."""
    return Owner(
        end_user=end_user.model_dump(exclude_none=True) if end_user else None,
        organization=organization.model_dump(exclude_none=True) if organization else None,
        tags=dict(tags) if tags else None,
    )


class ConnectionCreate(BaseModel):
    """What a connected account is made of."""

    model_config = ConfigDict(extra="forbid")

    integration: str = Field(description="The integration's key.")
    name: str = Field(min_length=1, max_length=200, description="e.g. DEV, QA, PROD, or a user's name.")
    parameters: dict[str, typing.Any] = Field(default_factory=dict, description="Integration parameter values.")
    credentials: dict[str, typing.Any] = Field(
        default_factory=dict, description="api_token: {token}; basic and password grant: {username, password}."
    )
    return_to: str | None = Field(default=None, description="Where to send the browser after authorization.")
    end_user: EndUser | None = None
    organization: Organization | None = None
    tags: Tags | None = None


class ConnectionPatch(BaseModel):
    """What may change on a connected account in place; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200, description="A new name.")
    parameters: dict[str, typing.Any] | None = Field(
        default=None, description="Parameter values, merged over the stored ones; checked as on create."
    )
    credentials: dict[str, typing.Any] | None = Field(
        default=None, description="New entered credentials (api_token: {token}; basic: {username, password})."
    )


class ReconnectBody(BaseModel):
    """Options of a reconnection."""

    model_config = ConfigDict(extra="forbid")

    return_to: str | None = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def connection_json(
    record: ConnectionRecord, *, scopes: list[str] | None = None, authorize_url: str | None = None
) -> dict[str, typing.Any]:
    """The public view of a connection: secret parameters masked, never a token."""
    data: dict[str, typing.Any] = {
        "id": record.id,
        "integration": record.integration_key,
        "name": record.name,
        "status": record.status,
        "parameters": record.public_parameters(),
        "scopes": scopes,
        "wanted_scopes": list(record.wanted_scopes),
        "expires_at": _iso(record.expires_at),
        "last_refreshed_at": _iso(record.last_refreshed_at),
        "last_error": record.last_error,
        "warning": record.warning,
        "end_user": record.end_user,
        "organization": record.organization,
        "tags": record.tags,
        "created_at": _iso(record.created_at),
        "updated_at": _iso(record.updated_at),
    }
    if authorize_url:
        data["authorize_url"] = authorize_url
    return data


@router.post("", status_code=201, summary="Create a connected account", responses=errors(404, 409, 502))
async def create_connection(body: ConnectionCreate, broker: BrokerDep, _caller: WriteDep) -> JSONResponse:
    """201 with the connection; ``authorize_url`` when the user must authorize in a browser."""
    result = await broker.connections.create(
        integration_key=body.integration,
        name=body.name,
        parameters=body.parameters,
        credentials=body.credentials,
        return_to=body.return_to,
        owner=owner_of(body.end_user, body.organization, body.tags),
    )
    return JSONResponse(connection_json(result.connection, authorize_url=result.authorize_url), status_code=201)


@router.get("", summary="List connected accounts", responses=errors(400))
async def list_connections(
    broker: BrokerDep,
    _caller: ReadDep,
    integration: typing.Annotated[str | None, Query(description="Only this integration's (its key).")] = None,
    status: typing.Annotated[str | None, Query(description="Only those in this status, e.g. needs_reauth.")] = None,
    end_user_id: typing.Annotated[str | None, Query(max_length=255, description="Only this end user's.")] = None,
    organization_id: typing.Annotated[
        str | None, Query(max_length=255, description="Only this organization's.")
    ] = None,
    tag: typing.Annotated[
        list[str] | None, Query(description="`key:value`; repeat for several (all must match).")
    ] = None,
    q: typing.Annotated[
        str | None, Query(max_length=255, description="Part of the account's name (any case), or its whole id.")
    ] = None,
    limit: typing.Annotated[int, Query(ge=1, le=1000, description="Page size (1-1000).")] = 100,
    cursor: typing.Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
) -> dict[str, typing.Any]:
    """``{"items": [...], "next_cursor": str | null}``, oldest first; pass ``next_cursor`` back for the next page."""
    tags: list[tuple[str, str]] = []
    for item in tag or []:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ParameterError([ErrorItem("tag", f"{item[:100]!r} is not key:value")])
        tags.append((key, value))
    where = ConnectionFilter(
        integration_key=integration,
        status=status,
        end_user_id=end_user_id,
        organization_id=organization_id,
        tags=tuple(tags),
        search=q or None,
    )
    records, next_cursor = await broker.store.connections.page(where, limit=limit, cursor=cursor)
    return {"items": [connection_json(r) for r in records], "next_cursor": next_cursor}


@router.get("/{connection_id}", summary="Show a connected account", responses=errors(404))
async def get_connection(connection_id: str, broker: BrokerDep, _caller: ReadDep) -> dict[str, typing.Any]:
    """Status, parameters (secret ones masked), expiry, scopes, last error — never a token.

    ``pagination`` is the integration's paging rule (or null): what the SDK's ``paginate`` follows.
    """
    record, scopes = await broker.connections.view(connection_id)
    spec = (await broker.get_integration(record.integration_key)).spec
    paging = spec.pagination.model_dump(mode="json", exclude_none=True) if spec.pagination else None
    return {**connection_json(record, scopes=scopes), "pagination": paging}


@router.patch("/{connection_id}", summary="Change a connected account in place", responses=errors(404, 409, 502))
async def patch_connection(
    connection_id: str, body: ConnectionPatch, broker: BrokerDep, _caller: WriteDep
) -> dict[str, typing.Any]:
    """Rename, change parameters or rotate an API token / basic password; the id stays. New parameter values
    set a provider's token aside (``needs_reauth``: reconnect); an entered token must come with them.
    422 with every problem, nothing changed. Secrets are never returned."""
    record = await broker.connections.edit(
        connection_id, name=body.name, parameters=body.parameters, credentials=body.credentials
    )
    return connection_json(record)


@router.delete("/{connection_id}", summary="Delete a connected account (revoking upstream)", responses=errors(404, 409))
async def delete_connection(connection_id: str, broker: BrokerDep, _caller: WriteDep) -> dict[str, typing.Any]:
    """Revoke upstream when the integration has a revoke URL, then delete; a failed revoke is reported."""
    result = await broker.connections.delete(connection_id)
    return {
        "deleted": True,
        "revoked": result.revoked,
        "revoke_error": result.revoke_error,
        "revocations": [{"token": t.token_type, "revoked": t.revoked, "error": t.error} for t in result.tokens],
    }


@router.get("/{connection_id}/token", summary="Get a valid access token", responses=errors(404, 409, 502))
async def get_token(connection_id: str, broker: BrokerDep, caller: TokenDep) -> JSONResponse:
    """For apps that call the API themselves: a valid token, refreshed first when due (``Cache-Control: no-store``).

    Every read is recorded as a ``token.read`` event (which key, which connection; never the token). A
    body-less GET is answered by the same logic on the raw ASGI path (``api/token_route.py``).
    """
    token = await read_token(broker, caller, connection_id)
    return JSONResponse(
        {"access_token": token.access_token, "token_type": token.token_type, "expires_at": _iso(token.expires_at)},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


@router.post("/{connection_id}/test", summary="Run the integration's test request", responses=errors(404, 409, 502))
async def test_connection(connection_id: str, broker: BrokerDep, _caller: WriteDep) -> dict[str, typing.Any]:
    """``{"ok": bool, "status": int|null, "detail": str}``."""
    result = await broker.connections.test(connection_id)
    return {"ok": result.ok, "status": result.status, "detail": result.detail}


@router.post("/{connection_id}/refresh", summary="Refresh the token now", responses=errors(404, 409, 502))
async def refresh_connection(connection_id: str, broker: BrokerDep, _caller: WriteDep) -> dict[str, typing.Any]:
    """Always refreshes (client credentials and custom token fetch a new token)."""
    await broker.connections.refresh(connection_id, force=True)
    record, scopes = await broker.connections.view(connection_id)
    return connection_json(record, scopes=scopes)


@router.post("/{connection_id}/reconnect", summary="Authorize again", responses=errors(404, 409, 502))
async def reconnect(
    connection_id: str, broker: BrokerDep, _caller: WriteDep, body: ReconnectBody | None = None
) -> dict[str, typing.Any]:
    """A new ``authorize_url`` for authorization-code connections; a new token for the other token grants."""
    result = await broker.connections.reconnect(connection_id, return_to=body.return_to if body else None)
    return connection_json(result.connection, authorize_url=result.authorize_url)
