"""Add from catalog: search the shipped entries, then a form (your OAuth app) beside the entry's setup notes."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.responses import Response

from authbridge.catalog import CATEGORIES, CatalogEntry, CatalogEntryNotFound, get_entry, integration_from, search
from authbridge.console.pages import Ctx
from authbridge.errors import ConflictError, ErrorItem, SpecError

__all__ = ["ICONS_DIR", "bundled_icons", "catalog_entry", "catalog_list", "icon_path"]

_MAX_QUERY = 200

#: Brand icons copied from simple-icons (CC0; see README.md there), served from ``/static/icons/``.
ICONS_DIR = Path(__file__).parent / "static" / "icons"
# The static files are served with the type ``mimetypes`` guesses; some systems' tables lack ``.svg``.
mimetypes.add_type("image/svg+xml", ".svg")


def bundled_icons() -> frozenset[str]:
    """The simple-icons slugs that have a file in :data:`ICONS_DIR`."""
    return frozenset(path.stem for path in ICONS_DIR.glob("*.svg"))


_ICONS = bundled_icons()


def icon_path(entry: CatalogEntry) -> str | None:
    """The console path (below its prefix) of the entry's brand icon, or ``None`` when none is bundled."""
    slug = entry.meta.icon
    return f"/static/icons/{slug}.svg" if slug in _ICONS else None


async def catalog_list(ctx: Ctx) -> Response:
    """Every entry, filtered by a search text and a category."""
    query = ctx.request.query_params.get("q", "")[:_MAX_QUERY]
    category = ctx.request.query_params.get("category", "")
    if category not in CATEGORIES:
        category = ""
    items = search(query or None, category or None)
    return ctx.render(
        "catalog.html",
        title="Add from catalog",
        items=items,
        q=query,
        category=category,
        categories=CATEGORIES,
        icon_path=icon_path,
    )


def _scopes(entry: CatalogEntry, typed: str) -> list[str] | None:
    """The scopes to give the entry's spec: those typed; None (keep the spec's) when none were typed and it has none.

    The form shows the field only for an auth type with scopes; scopes posted for another are refused
    by :func:`integration_from` (a clear error).
    """
    scopes = typed.replace(",", " ").split()
    return scopes if scopes or entry.default_scopes else None


async def catalog_entry(ctx: Ctx) -> Response:
    """The entry's setup notes beside a form; saving creates the integration and opens its page."""
    try:
        entry = get_entry(str(ctx.request.path_params["key"]))
    except CatalogEntryNotFound as exc:
        return ctx.error(404, "Not in the catalog", exc.message)
    values = {"key": entry.key, "client_id": "", "scopes": " ".join(entry.default_scopes)}
    problems: list[ErrorItem] = []
    if ctx.request.method == "POST":
        values = {name: ctx.form.get(name, "").strip() for name in ("key", "client_id", "scopes")}
        secret = ctx.form.get("client_secret", "")
        try:
            spec = integration_from(
                entry,
                client_id=values["client_id"] or None,
                client_secret=secret or None,
                scopes=_scopes(entry, values["scopes"]),
                key=values["key"] or entry.key,
            )
            record, _created = await ctx.broker.save_integration(spec, update=False)
        except SpecError as exc:
            problems = list(exc.errors)
        except ConflictError as exc:
            problems = [ErrorItem("key", exc.message)]
        else:
            return ctx.redirect(f"/integrations/{record.key}/edit?saved=1")
    redirect_uri = ctx.broker.redirect_uri_for(entry.spec)
    return ctx.render(
        "catalog_entry.html",
        status=422 if problems else 200,
        title=f"Add {entry.name}",
        entry=entry,
        values=values,
        problems=[str(p) for p in problems],
        redirect_uri=redirect_uri,
        icon=icon_path(entry),
    )
