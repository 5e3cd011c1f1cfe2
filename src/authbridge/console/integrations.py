"""Integration pages: list, the form (create and edit), the YAML tab (view, paste, download), delete."""

from __future__ import annotations

import typing
from datetime import datetime
from urllib.parse import urlencode

from starlette.responses import Response

from authbridge.auth import plugin_for
from authbridge.console.pages import Ctx
from authbridge.console.sections import ADVANCED, AUTH_TYPES, PARAMETER_FIELDS, SECTIONS
from authbridge.console.spec_form import (
    blank_parameter,
    field_errors,
    form_to_data,
    open_sections,
    spec_to_form,
    stored_secrets,
)
from authbridge.errors import ConflictError, ErrorItem, SpecError
from authbridge.spec import Integration, dump_spec, load_spec, spec_to_dict, validate_spec
from authbridge.spec.builtins import BUILTIN_KEYS, builtin_spec

__all__ = [
    "import_yaml",
    "integration_delete",
    "integration_download",
    "integration_edit",
    "integration_new",
    "integration_yaml",
    "integrations_list",
]

_AUTH_LABELS = dict(AUTH_TYPES)
#: Spec blocks the form has no fields for: an edit through the form keeps the stored ones.
_NOT_ON_FORM = ("rate_limit", "pagination")
_LABELS = {f.name: f.label for s in SECTIONS for f in s.fields}
#: The write-only inputs: never refilled, kept server-side across an error (``console.drafts``).
_SECRET_FIELDS = tuple(f.name for s in SECTIONS for f in s.fields if f.kind == "secret")


def _key(ctx: Ctx) -> str:
    return str(ctx.request.path_params["key"])


#: Integrations per page of the list.
INTEGRATIONS_PAGE = 100


async def integrations_list(ctx: Ctx) -> Response:
    """Integrations by key, searched by key or name, a page at a time, with their auth style and accounts."""
    query = ctx.request.query_params
    search = query.get("q", "").strip()[:255]
    after = query.get("after", "")[:64]
    counts = await ctx.broker.store.connections.count_by_integration()
    stored = await ctx.broker.list_integrations()
    # Built-in integrations (``mcp``) are listed before their first use stores them: connect by URL at once.
    known = {r.key for r in stored}
    rows: list[tuple[str, Integration, datetime | None]] = [(r.key, r.spec, r.updated_at) for r in stored]
    rows += [(key, spec, None) for key in BUILTIN_KEYS if key not in known and (spec := builtin_spec(key))]
    rows.sort(key=lambda row: row[0])
    wanted = search.lower()
    found = [r for r in rows if not wanted or wanted in r[0].lower() or wanted in r[1].name.lower()]
    shown = [r for r in found if not after or r[0] > after]
    more = len(shown) > INTEGRATIONS_PAGE
    shown = shown[:INTEGRATIONS_PAGE]
    items = [
        {
            "key": key,
            "name": spec.name,
            "auth": _AUTH_LABELS.get(spec.auth.type, spec.auth.type),
            "style": plugin_for(spec.auth).style(spec),
            "accounts": counts.get(key, 0),
            "updated": updated,
            "builtin": key in BUILTIN_KEYS,
            "connect": "Connect by URL" if key == "mcp" else "Connect an account",
        }
        for key, spec, updated in shown
    ]
    deleted = query.get("deleted", "")
    kept = {"q": search} if search else {}
    return ctx.render(
        "integrations.html",
        title="Integrations",
        items=items,
        q=search,
        total=len(found),
        paged=bool(after),
        first_query=urlencode(kept),
        next_query=urlencode({**kept, "after": shown[-1][0]}) if more and shown else "",
        deleted=deleted if deleted.isalnum() else "",
    )


def _redirect_uri(ctx: Ctx) -> str:
    """The OAuth callback URL, shown for the redirecting auth types to register with the provider."""
    return ctx.broker.policy.redirect_uri


def _form_page(
    ctx: Ctx,
    *,
    key: str | None,
    values: dict[str, str],
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
    has_secret: bool = False,
    version: int | None = None,
    draft: str = "",
) -> Response:
    count = int(values.get("parameters.count", "0") or 0)
    labels = {**_LABELS, "parameters": "Integration Parameters"}
    labels.update(
        {
            f"parameters.{r}.{f.name}": f"Parameter {r + 1} {f.label.lower()}"
            for r in range(count)
            for f in PARAMETER_FIELDS
        }
    )
    return ctx.render(
        "integration_form.html",
        status=status,
        title=f"Edit {values.get('name') or key}" if key else "New integration",
        key=key,
        tab="form",
        sections=SECTIONS,
        advanced=ADVANCED,
        open_sections=open_sections(values, errors or {}),
        parameter_fields=PARAMETER_FIELDS,
        rows=list(range(count)),
        values=values,
        errors=errors or {},
        labels=labels,
        redirect_uri=_redirect_uri(ctx),
        secret_hint=_secret_hint(has_secret=has_secret, kept=bool(draft)),
        draft=draft,
        saved=ctx.request.query_params.get("saved") == "1" and not errors,
        version=version,
    )


def _secret_hint(*, has_secret: bool, kept: bool) -> str:
    if kept:
        return "Write-only. What you typed is kept (not shown): leave empty to use it, or type another."
    return "Write-only. Leave empty to keep the stored secret." if has_secret else "Write-only."


def _sid(ctx: Ctx) -> str:
    return str(ctx.claims["sid"]) if ctx.claims else ""


def _keep_secrets(ctx: Ctx, values: dict[str, str]) -> str:
    """Keep the typed secrets server-side for the next try; the draft id the page carries instead."""
    return ctx.console.drafts.keep(_sid(ctx), {name: values.get(name, "") for name in _SECRET_FIELDS})


async def _save_form(ctx: Ctx, *, key: str | None, stored: Integration | None) -> Response:
    values = dict(ctx.form)
    stored_paths = stored_secrets(stored)
    has_secret = bool(stored_paths)
    drafted = ctx.console.drafts.get(_sid(ctx), values.pop("draft", ""))
    for name in _SECRET_FIELDS:
        if not values.get(name) and drafted.get(name):
            values[name] = drafted[name]
    if values.get("action") == "add_parameter":
        draft = _keep_secrets(ctx, values)
        return _form_page(ctx, key=key, values=blank_parameter(values), has_secret=has_secret, draft=draft)
    if key is not None:
        values["key"] = key
    data, problems, rows = form_to_data(values, keep_secret=stored_paths)
    if stored is not None:  # blocks the form does not show are kept as they were (edit them as YAML)
        stored_blocks = spec_to_dict(stored)
        data.update({block: stored_blocks[block] for block in _NOT_ON_FORM if block in stored_blocks})
    spec: Integration | None = None
    try:
        spec = validate_spec(data)
    except SpecError as exc:
        problems = [*problems, *exc.errors]
    if spec is not None and not problems:
        problems = plugin_for(spec.auth).incomplete(spec)
    if spec is not None and not problems:
        try:
            record, _created = await ctx.broker.save_integration(spec, create=key is None, update=key is not None)
        except SpecError as exc:
            problems = list(exc.errors)
        except ConflictError as exc:
            problems = [ErrorItem("key", exc.message)]
        else:
            return ctx.redirect(f"/integrations/{record.key}/edit?saved=1")
    errors = field_errors(problems, auth_type=values.get("auth.type", ""), rows=rows)
    draft = _keep_secrets(ctx, values)
    return _form_page(ctx, key=key, values=values, errors=errors, status=422, has_secret=has_secret, draft=draft)


async def integration_new(ctx: Ctx) -> Response:
    """The form for a new integration (an OAuth 2.0 one to start with)."""
    if ctx.request.method == "POST":
        return await _save_form(ctx, key=None, stored=None)
    return _form_page(ctx, key=None, values=spec_to_form(None))


async def integration_edit(ctx: Ctx) -> Response:
    """The form of an existing integration; the key cannot change."""
    record = await ctx.broker.get_integration(_key(ctx))
    if ctx.request.method == "POST":
        return await _save_form(ctx, key=record.key, stored=record.spec)
    return _form_page(
        ctx,
        key=record.key,
        values=spec_to_form(record.spec),
        has_secret=bool(stored_secrets(record.spec)),
        version=record.version,
    )


def _problems(exc: SpecError | ConflictError) -> list[str]:
    if isinstance(exc, SpecError):
        return [str(item) for item in exc.errors]
    return [exc.message]


def _yaml_page(
    ctx: Ctx, *, key: str | None, text: str, problems: typing.Sequence[str] = (), **extra: object
) -> Response:
    return ctx.render(
        "integration_yaml.html",
        status=422 if problems else 200,
        title=f"{key}: YAML" if key else "New integration from YAML",
        key=key,
        tab="yaml",
        text=text,
        problems=problems,
        saved=ctx.request.query_params.get("saved") == "1" and not problems,
        **extra,
    )


async def integration_yaml(ctx: Ctx) -> Response:
    """View, edit and save an integration as YAML (the client secret masked)."""
    record = await ctx.broker.get_integration(_key(ctx))
    if ctx.request.method == "GET":
        return _yaml_page(ctx, key=record.key, text=dump_spec(record.spec), version=record.version)
    text = ctx.form.get("yaml", "")
    try:
        spec = load_spec(text)
        if spec.key != record.key:
            raise SpecError([ErrorItem("key", f"must stay {record.key!r} (paste a new integration under New)")])
        await ctx.broker.save_integration(spec, create=False)
    except (SpecError, ConflictError) as exc:
        return _yaml_page(ctx, key=record.key, text=text, problems=_problems(exc))
    return ctx.redirect(f"/integrations/{record.key}/yaml?saved=1")


async def import_yaml(ctx: Ctx) -> Response:
    """Paste the YAML of a new integration."""
    if ctx.request.method == "GET":
        return _yaml_page(ctx, key=None, text="")
    text = ctx.form.get("yaml", "")
    try:
        record, _created = await ctx.broker.save_integration(load_spec(text), update=False)
    except (SpecError, ConflictError) as exc:
        return _yaml_page(ctx, key=None, text=text, problems=_problems(exc))
    return ctx.redirect(f"/integrations/{record.key}/edit?saved=1")


async def integration_download(ctx: Ctx) -> Response:
    """The YAML as a file (``<key>.yaml``), secret masked."""
    record = await ctx.broker.get_integration(_key(ctx))
    return Response(
        dump_spec(record.spec),
        media_type="application/yaml; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{record.key}.yaml"', "Cache-Control": "no-store"},
    )


async def integration_delete(ctx: Ctx) -> Response:
    """Confirm, then delete an integration that has no connected accounts."""
    record = await ctx.broker.get_integration(_key(ctx))
    if ctx.request.method == "POST":
        try:
            await ctx.broker.delete_integration(record.key)
        except ConflictError as exc:
            return ctx.error(409, "Cannot delete", exc.message)
        return ctx.redirect(f"/integrations?deleted={record.key}")
    accounts = len(await ctx.broker.store.connections.list(integration_key=record.key))
    return ctx.render(
        "integration_delete.html",
        title=f"Delete {record.spec.name}",
        key=record.key,
        name=record.spec.name,
        tab="delete",
        accounts=accounts,
    )
