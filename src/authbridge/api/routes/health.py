"""``GET /health`` (liveness) and ``GET /ready`` (readiness). Neither needs a key."""

from __future__ import annotations

import typing

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from authbridge.api.deps import BrokerDep
from authbridge.broker.readiness import Lifecycle, readiness

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", summary="Is the service up and its database reachable?")
async def health(broker: BrokerDep) -> JSONResponse:
    """200 ``{"status": "ok"}`` when the database answers, 503 otherwise."""
    if await broker.healthy():
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)


@router.get("/ready", summary="May this process take traffic?")
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
