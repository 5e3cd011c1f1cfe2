"""Connected accounts over HTTP: create (with the authorize URL), list, show, delete, token, test, refresh."""

from __future__ import annotations

import typing
from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from authbridge.api.deps import BrokerDep, CallerDep
from authbridge.broker import ConnectionRecord

__all__ = ["router"]

router = APIRouter(prefix="/connections", tags=["connections"])


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
        "expires_at": _iso(record.expires_at),
        "last_refreshed_at": _iso(record.last_refreshed_at),
        "last_error": record.last_error,
        "warning": record.warning,
        "created_at": _iso(record.created_at),
        "updated_at": _iso(record.updated_at),
    }
    if authorize_url:
        data["authorize_url"] = authorize_url
    return data


@router.post("", status_code=201, summary="Create a connected account")
async def create_connection(body: ConnectionCreate, broker: BrokerDep, _caller: CallerDep) -> JSONResponse:
    """201 with the connection; ``authorize_url`` when the user must authorize in a browser."""
    result = await broker.connections.create(
        integration_key=body.integration,
        name=body.name,
        parameters=body.parameters,
        credentials=body.credentials,
        return_to=body.return_to,
    )
    return JSONResponse(connection_json(result.connection, authorize_url=result.authorize_url), status_code=201)


@router.get("", summary="List connected accounts")
async def list_connections(
    broker: BrokerDep, _caller: CallerDep, integration: str | None = None
) -> dict[str, typing.Any]:
    """Every connection, optionally of one integration."""
    records = await broker.store.connections.list(integration_key=integration)
    return {"items": [connection_json(r) for r in records]}


@router.get("/{connection_id}", summary="Show a connected account")
async def get_connection(connection_id: str, broker: BrokerDep, _caller: CallerDep) -> dict[str, typing.Any]:
    """Status, parameters (secret ones masked), expiry, scopes, last error — never a token."""
    record, scopes = await broker.connections.view(connection_id)
    return connection_json(record, scopes=scopes)


@router.delete("/{connection_id}", summary="Delete a connected account (revoking upstream)")
async def delete_connection(connection_id: str, broker: BrokerDep, _caller: CallerDep) -> dict[str, typing.Any]:
    """Revoke upstream when the integration has a revoke URL, then delete; a failed revoke is reported."""
    result = await broker.connections.delete(connection_id)
    return {
        "deleted": True,
        "revoked": result.revoked,
        "revoke_error": result.revoke_error,
        "revocations": [{"token": t.token_type, "revoked": t.revoked, "error": t.error} for t in result.tokens],
    }


@router.get("/{connection_id}/token", summary="Get a valid access token")
async def get_token(connection_id: str, broker: BrokerDep, _caller: CallerDep) -> JSONResponse:
    """For apps that call the API themselves: a valid token, refreshed first when due. Not cached."""
    token = await broker.connections.token(connection_id)
    return JSONResponse(
        {"access_token": token.access_token, "token_type": token.token_type, "expires_at": _iso(token.expires_at)},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


@router.post("/{connection_id}/test", summary="Run the integration's test request")
async def test_connection(connection_id: str, broker: BrokerDep, _caller: CallerDep) -> dict[str, typing.Any]:
    """``{"ok": bool, "status": int|null, "detail": str}``."""
    result = await broker.connections.test(connection_id)
    return {"ok": result.ok, "status": result.status, "detail": result.detail}


@router.post("/{connection_id}/refresh", summary="Refresh the token now")
async def refresh_connection(connection_id: str, broker: BrokerDep, _caller: CallerDep) -> dict[str, typing.Any]:
    """Always refreshes (client credentials and custom token fetch a new token)."""
    await broker.connections.refresh(connection_id, force=True)
    record, scopes = await broker.connections.view(connection_id)
    return connection_json(record, scopes=scopes)


@router.post("/{connection_id}/reconnect", summary="Authorize again")
async def reconnect(
    connection_id: str, broker: BrokerDep, _caller: CallerDep, body: ReconnectBody | None = None
) -> dict[str, typing.Any]:
    """A new ``authorize_url`` for authorization-code connections; a new token for the other token grants."""
    result = await broker.connections.reconnect(connection_id, return_to=body.return_to if body else None)
    return connection_json(result.connection, authorize_url=result.authorize_url)
