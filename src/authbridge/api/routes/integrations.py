"""Management API for integrations: the spec as JSON in and out, secrets write-only."""

from __future__ import annotations

import typing

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse

from authbridge.api.deps import AdminDep, BrokerDep
from authbridge.api.errors import errors
from authbridge.api.routes.catalog import spec_from_catalog
from authbridge.broker import IntegrationRecord
from authbridge.errors import ErrorItem, SpecError
from authbridge.spec import Integration, load_specs, spec_to_dict, validate_spec

__all__ = ["router"]

router = APIRouter(prefix="/integrations", tags=["integrations"])

_SPEC_SCHEMA = {"requestBody": {"content": {"application/json": {"schema": Integration.model_json_schema()}}}}
_MAX_IMPORT = 1024 * 1024


def _out(record: IntegrationRecord, broker_redirect: str | None) -> dict[str, typing.Any]:
    data = spec_to_dict(record.spec)
    if broker_redirect:
        data["redirect_uri"] = broker_redirect
    return data


def _respond(record: IntegrationRecord, redirect: str | None, status: int) -> JSONResponse:
    return JSONResponse(_out(record, redirect), status_code=status, headers={"ETag": f'"v{record.version}"'})


def _parse(payload: object, key: str | None = None) -> Integration:
    """Validate a JSON spec; on PUT the body's key must match the URL's. Every problem is reported at once."""
    errors: list[ErrorItem] = []
    if isinstance(payload, dict):
        payload = {k: v for k, v in payload.items() if k != "redirect_uri"}  # read-only field
        if key is not None and payload.setdefault("key", key) != key:
            errors.append(ErrorItem("key", f"must be {key!r}, the key in the URL"))
    try:
        spec = validate_spec(payload)
    except SpecError as exc:
        raise SpecError([*errors, *(e for e in exc.errors if not (errors and e.path == "key"))]) from None
    if errors:
        raise SpecError(errors)
    return spec


@router.get("", summary="List integrations", responses=errors())
async def list_integrations(broker: BrokerDep, _caller: AdminDep) -> dict[str, typing.Any]:
    """Every integration's spec (client secrets masked)."""
    records = await broker.list_integrations()
    return {"items": [_out(r, broker.redirect_uri_for(r.spec)) for r in records]}


@router.post(
    "", status_code=201, summary="Create an integration", openapi_extra=_SPEC_SCHEMA, responses=errors(404, 409)
)
async def create_integration(
    broker: BrokerDep,
    _caller: AdminDep,
    payload: typing.Any = Body(...),  # noqa: B008
) -> JSONResponse:
    """Create from a JSON spec, or from a catalog entry: ``{"from_catalog": "github", "client_id": ...,
    "client_secret": ..., "scopes": [...], "key": ...}``; 409 if the key is taken, 422 with every problem if invalid."""
    from_catalog = isinstance(payload, dict) and "from_catalog" in payload
    spec = spec_from_catalog(payload) if from_catalog else _parse(payload)
    record, _ = await broker.save_integration(spec, update=False)
    return _respond(record, broker.redirect_uri_for(record.spec), 201)


@router.get("/{key}", summary="Get an integration", responses=errors(404))
async def get_integration(key: str, broker: BrokerDep, _caller: AdminDep) -> JSONResponse:
    """The spec of one integration."""
    record = await broker.get_integration(key)
    return _respond(record, broker.redirect_uri_for(record.spec), 200)


@router.put("/{key}", summary="Create or replace an integration", openapi_extra=_SPEC_SCHEMA, responses=errors(409))
async def put_integration(
    key: str,
    broker: BrokerDep,
    _caller: AdminDep,
    payload: typing.Any = Body(...),  # noqa: B008
) -> JSONResponse:
    """Replace (or create) an integration. A ``client_secret`` of ``********`` keeps the stored one."""
    record, created = await broker.save_integration(_parse(payload, key))
    return _respond(record, broker.redirect_uri_for(record.spec), 201 if created else 200)


@router.delete("/{key}", status_code=204, summary="Delete an integration", responses=errors(404, 409))
async def delete_integration(key: str, broker: BrokerDep, _caller: AdminDep) -> Response:
    """Delete an integration that has no connected accounts (409 otherwise)."""
    await broker.delete_integration(key)
    return Response(status_code=204)


import_router = APIRouter(tags=["integrations"])


@import_router.post(
    "/integrations:import",
    summary="Create or update integrations from YAML",
    responses=errors(409),
    openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}},
)
async def import_integrations(request: Request, broker: BrokerDep, _caller: AdminDep) -> dict[str, typing.Any]:
    """Apply one or more YAML documents; every spec is validated before any is saved."""
    body = bytearray()
    async for chunk in request.stream():  # read at most just over the limit, whatever Content-Length says
        body += chunk
        if len(body) > _MAX_IMPORT:
            raise SpecError([ErrorItem("", "the YAML is larger than 1 MiB")])
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError([ErrorItem("", "the body must be UTF-8 text")]) from None
    results = await broker.save_integrations(load_specs(text))
    return {
        "created": [r.key for r, created in results if created],
        "updated": [r.key for r, created in results if not created],
    }
