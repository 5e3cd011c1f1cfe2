"""The HTTP API: management routes, health, and the error mapping they share."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from authbridge.api.errors import error_response, install_error_handlers
from authbridge.api.routes import catalog, connections, events, health, integrations, metrics, oauth, sessions

__all__ = ["ROUTERS", "error_response", "install_api"]

#: Every router of the API, in the order they are matched.
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    metrics.router,
    integrations.import_router,
    integrations.router,
    connections.router,
    sessions.router,
    oauth.router,
    events.router,
    catalog.router,
)


def install_api(app: FastAPI) -> None:
    """Mount every API route and the error handlers on ``app``."""
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
