"""The catalog over HTTP: ``GET /catalog``, ``GET /catalog/{key}``, and specs for ``POST /integrations``."""

from __future__ import annotations

import typing

from fastapi import APIRouter, Query

from authbridge.api.deps import AdminDep
from authbridge.api.errors import errors
from authbridge.catalog import CATEGORIES, get_entry, integration_from, search
from authbridge.errors import ErrorItem, SpecError
from authbridge.spec import Integration

__all__ = ["router", "spec_from_catalog"]

router = APIRouter(prefix="/catalog", tags=["catalog"])

#: The fields ``POST /integrations`` takes besides ``from_catalog``.
_OVERRIDES = frozenset({"client_id", "client_secret", "scopes", "key", "name"})


@router.get("", summary="List catalog entries", responses=errors())
async def list_catalog(
    _caller: AdminDep,
    q: typing.Annotated[str | None, Query(max_length=200, description="Text in the key, name or description")] = None,
    category: typing.Annotated[str | None, Query(max_length=50, description="A category")] = None,
) -> dict[str, typing.Any]:
    """Entries matching ``q`` and ``category``, and every category."""
    if category is not None and category not in CATEGORIES:
        raise SpecError([ErrorItem("category", f"is not a category; one of: {', '.join(CATEGORIES)}")])
    return {"items": [e.summary() for e in search(q, category)], "categories": list(CATEGORIES)}


@router.get("/{key}", summary="Get a catalog entry", responses=errors(404))
async def get_catalog_entry(key: str, _caller: AdminDep) -> dict[str, typing.Any]:
    """One entry: setup notes, scopes, rate-limit and pagination data, and its spec."""
    return get_entry(key).to_dict()


def _text(payload: dict[str, typing.Any], name: str, errors: list[ErrorItem]) -> str | None:
    value = payload.get(name)
    if value is None or isinstance(value, str):
        return value
    errors.append(ErrorItem(name, "must be a string"))
    return None


def spec_from_catalog(payload: dict[str, typing.Any]) -> Integration:
    """The integration a ``{"from_catalog": KEY, ...overrides}`` body asks for.

    Raises:
        SpecError: an unknown field, a wrong type, a missing OAuth app credential, or an invalid result.
        CatalogEntryNotFound: no entry has that key.
    """
    errors = [ErrorItem(k, f"is not taken with from_catalog; one of: {', '.join(sorted(_OVERRIDES))}") for k in payload]
    errors = [e for e in errors if e.path not in _OVERRIDES | {"from_catalog"}]
    key = payload.get("from_catalog")
    if not isinstance(key, str):
        raise SpecError([ErrorItem("from_catalog", "must be the key of a catalog entry"), *errors])
    values = {name: _text(payload, name, errors) for name in ("client_id", "client_secret", "key", "name")}
    scopes = payload.get("scopes")
    if isinstance(scopes, str):
        scopes = scopes.replace(",", " ").split()
    elif scopes is not None and not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
        errors.append(ErrorItem("scopes", "must be a list of strings"))
        scopes = None
    if errors:
        raise SpecError(errors)
    return integration_from(get_entry(key), scopes=scopes, **values)
