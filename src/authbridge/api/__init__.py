"""The HTTP API: management routes, health, and the error mapping they share."""

from __future__ import annotations

from fastapi import FastAPI

from authbridge.api.errors import error_response, install_error_handlers
from authbridge.api.routes import connections, events, health, integrations, oauth, sessions

__all__ = ["error_response", "install_api"]


def install_api(app: FastAPI) -> None:
    """Mount every API route and the error handlers on ``app``."""
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(integrations.import_router)
    app.include_router(integrations.router)
    app.include_router(connections.router)
    app.include_router(sessions.router)
    app.include_router(oauth.router)
    app.include_router(events.router)
