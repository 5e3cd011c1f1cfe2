"""``GET /health``: 200 when the database answers, 503 otherwise. Needs no key."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from authbridge.api.deps import BrokerDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", summary="Is the service up and its database reachable?")
async def health(broker: BrokerDep) -> JSONResponse:
    """200 ``{"status": "ok"}`` when the database answers, 503 otherwise."""
    if await broker.healthy():
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
