"""``GET /metrics``: the Prometheus text format, behind its own bearer token or on the admin listener only."""

from __future__ import annotations

import hmac
import logging
import typing

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from authbridge.api.deps import BrokerDep
from authbridge.api.errors import error_response
from authbridge.config import Settings
from authbridge.metrics import CONTENT_TYPE, Metrics

__all__ = ["SCRAPE_QUERY_TIMEOUT", "router"]

router = APIRouter(tags=["health"])
logger = logging.getLogger("authbridge.metrics")

#: Seconds the counts read at scrape time may take; past it the gauges keep their last values.
SCRAPE_QUERY_TIMEOUT = 5.0


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, broker: BrokerDep) -> Response:
    """Every metric; connection counts by status and the webhook backlog are read from the database now."""
    settings = typing.cast(Settings, request.app.state.settings)
    collected = typing.cast(Metrics | None, request.app.state.metrics)
    if collected is None:
        return error_response(
            404, "not_found", "metrics are off: set AUTHBRIDGE_METRICS_TOKEN or AUTHBRIDGE_ADMIN_LISTEN"
        )
    if settings.metrics_token is not None:
        given = _bearer(request)
        if given is None or not hmac.compare_digest(given.encode(), settings.metrics_token.encode()):
            return error_response(
                401, "unauthenticated", "GET /metrics needs the metrics token", headers={"WWW-Authenticate": "Bearer"}
            )
    with anyio.move_on_after(SCRAPE_QUERY_TIMEOUT) as scope:
        counts = await broker.store.connections.count_by_status()
        backlog = await broker.store.webhooks.backlog()
    if scope.cancelled_caught:
        logger.warning(
            "metrics: counting connections took over %g s; the gauges keep their last values", SCRAPE_QUERY_TIMEOUT
        )
    else:
        collected.set_state(counts, backlog)
    return Response(collected.render(), media_type=CONTENT_TYPE)
