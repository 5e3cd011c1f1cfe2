"""``/connect/sessions``: the application's backend lets one end user connect accounts from a browser."""

from __future__ import annotations

import typing

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from authbridge.api.deps import BrokerDep, ConnectDep
from authbridge.api.errors import errors
from authbridge.api.routes.connections import EndUser, Organization, Tags
from authbridge.broker import SessionRequest

__all__ = ["router"]

router = APIRouter(prefix="/connect/sessions", tags=["connect sessions"])


class SessionCreate(BaseModel):
    """A connect session for one end user: either integrations they may connect, or one connection to re-authorize."""

    model_config = ConfigDict(extra="forbid")

    end_user: EndUser
    organization: Organization | None = None
    allowed_integrations: list[str] | None = Field(
        default=None, min_length=1, max_length=100, description="Integration keys the end user may connect."
    )
    reconnect: str | None = Field(
        default=None, max_length=32, description="Instead of allowed_integrations: a connection to re-authorize."
    )
    parameters: dict[str, dict[str, typing.Any]] = Field(
        default_factory=dict, description="Fixed parameter values per integration key; the rest are asked on the page."
    )
    tags: Tags | None = None
    return_to: str | None = Field(
        default=None, max_length=2048, description="Where the browser goes afterwards (an allowed return origin)."
    )
    ttl: str | int | None = Field(default=None, description="How long the session lasts: 30m by default, 24h at most.")


@router.post("", status_code=201, summary="Create a connect session", responses=errors(404, 409))
async def create_session(body: SessionCreate, broker: BrokerDep, caller: ConnectDep) -> JSONResponse:
    """201 ``{"token", "connect_url", "expires_at", "id"}``: hand ``connect_url`` to the end user's browser.

    The token is shown once and stored hashed; it works until it expires or completes one connection.
    """
    new = await broker.sessions.create(
        SessionRequest(
            end_user=body.end_user.model_dump(exclude_none=True),
            organization=body.organization.model_dump(exclude_none=True) if body.organization else None,
            allowed_integrations=body.allowed_integrations,
            reconnect=body.reconnect,
            parameters=body.parameters,
            tags=dict(body.tags or {}),
            return_to=body.return_to,
            ttl=body.ttl,
        ),
        caller=caller,
    )
    return JSONResponse(
        {
            "id": new.session.id,
            "token": new.token,
            "connect_url": new.connect_url,
            "expires_at": new.session.expires_at.isoformat(),
        },
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@router.delete("/{token}", summary="End a connect session", responses=errors(404, 409))
async def end_session(token: str, broker: BrokerDep, caller: ConnectDep) -> dict[str, typing.Any]:
    """The session stops working at once (a page already open shows that it ended)."""
    record = await broker.sessions.end(token, caller=caller)
    return {"id": record.id, "ended": True}
