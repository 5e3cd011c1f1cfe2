"""Request dependencies: the broker, and the API-key check every management route needs."""

from __future__ import annotations

import typing

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from authbridge.broker import ApiKeyRecord, Broker, check_scope

__all__ = [
    "AdminDep",
    "BrokerDep",
    "CallerDep",
    "ConnectDep",
    "ReadDep",
    "TokenDep",
    "WriteDep",
    "api_key_from",
    "get_broker",
    "require_api_key",
    "require_scope",
]


def get_broker(request: Request) -> Broker:
    """The broker the app's lifespan built."""
    return typing.cast(Broker, request.app.state.broker)


def api_key_from(request: Request) -> str | None:
    """The caller's API key: ``Authorization: Bearer <key>`` or ``X-AuthBridge-Key``."""
    header = request.headers.get("x-authbridge-key")
    if header:
        return header.strip()
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


# Declared for the OpenAPI document (the "Authorize" button of /docs); the header is read by api_key_from.
_bearer = HTTPBearer(auto_error=False, description="An API key: `authbridge api-keys create`")
_key_header = APIKeyHeader(name="X-AuthBridge-Key", auto_error=False, description="The same API key, another header")


async def require_api_key(
    request: Request,
    broker: Broker = Depends(get_broker),  # noqa: B008
    _bearer_key: typing.Any = Security(_bearer),  # noqa: B008
    _header_key: typing.Any = Security(_key_header),  # noqa: B008
) -> ApiKeyRecord:
    """Authenticate the caller; 401 with no hint of what was wrong otherwise."""
    return await broker.authenticate(api_key_from(request))


BrokerDep = typing.Annotated[Broker, Depends(get_broker)]
CallerDep = typing.Annotated[ApiKeyRecord, Depends(require_api_key)]


def require_scope(scope: str) -> typing.Callable[..., typing.Awaitable[ApiKeyRecord]]:
    """A dependency: a valid key (401 otherwise) that has ``scope`` or ``admin`` (403 naming the scope otherwise)."""

    async def dependency(caller: ApiKeyRecord = Depends(require_api_key)) -> ApiKeyRecord:  # noqa: B008
        check_scope(caller, scope)
        return caller

    dependency.__name__ = f"require_scope_{scope.replace(':', '_')}"
    return dependency


AdminDep = typing.Annotated[ApiKeyRecord, Depends(require_scope("admin"))]
ConnectDep = typing.Annotated[ApiKeyRecord, Depends(require_scope("connect"))]
ReadDep = typing.Annotated[ApiKeyRecord, Depends(require_scope("connections:read"))]
WriteDep = typing.Annotated[ApiKeyRecord, Depends(require_scope("connections:write"))]
TokenDep = typing.Annotated[ApiKeyRecord, Depends(require_scope("token"))]
