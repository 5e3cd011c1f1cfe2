"""``GET /health`` (liveness) and ``GET /ready`` (readiness). Neither needs a key."""

from __future__ import annotations

import typing

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from authbridge.api.deps import BrokerDep
from authbridge.api.errors import ErrorResponse
from authbridge.broker.readiness import Lifecycle, readiness

__all__ = ["router"]

router = APIRouter(tags=["health"])


class _Unavailable(BaseModel):
    status: str = Field(description="unavailable")
    database: str | None = Field(default=None, description="/health: unreachable")
    reason: str | None = Field(default=None, description="/ready: a code, e.g. shutting_down, migrations_not_at_head")
    message: str | None = None
    checks: dict[str, typing.Any] | None = None


_UNAVAILABLE: dict[int | str, dict[str, typing.Any]] = {
    503: {"model": _Unavailable, "description": "Not able to serve: the reason is in the body."},
    500: {"model": ErrorResponse, "description": "An unexpected error; the server log has the details."},
}


@router.get("/health", summary="Is the service up and its database reachable?", responses=_UNAVAILABLE)
async def health(broker: BrokerDep) -> JSONResponse:
    """200 ``{"status": "ok"}`` when the database answers, 503 otherwise."""
    if await broker.healthy():
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)


@router.get("/ready", summary="May this process take traffic?", responses=_UNAVAILABLE)
async def ready(request: Request, broker: BrokerDep) -> JSONResponse:
    """200 when the database answers, migrations are at head and the key ring decrypts its canaries.

    503 otherwise, and from the shutdown signal on, with ``reason`` (a code) and ``message``.
    """
    lifecycle = typing.cast(Lifecycle, request.app.state.lifecycle)
    result = await readiness(broker.store, lifecycle)
    if result.ready:
        return JSONResponse({"status": "ready", "checks": result.checks})
    body = {"status": "unavailable", "reason": result.reason, "message": result.message, "checks": result.checks}
    return JSONResponse(body, status_code=503, headers={"Cache-Control": "no-store"})
