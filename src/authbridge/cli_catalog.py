"""``authbridge catalog``: browse the shipped catalog and create integrations from its entries."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import typer

from authbridge.catalog import CATEGORIES, get_entry, integration_from, search
from authbridge.catalog.docs import render_markdown
from authbridge.cli import _err, _handle_errors, _out, _with_broker
from authbridge.errors import ErrorItem, SpecError
from authbridge.spec import dump_spec

if typing.TYPE_CHECKING:
    from authbridge.broker import Broker, IntegrationRecord

__all__ = ["catalog_app"]

catalog_app = typer.Typer(help="Ready integrations for common providers: list, show, add with your own OAuth app.")


@catalog_app.command("list")
@_handle_errors
def catalog_list(
    text: typing.Annotated[str | None, typer.Option("--search", help="Text in the key, name or description.")] = None,
    category: typing.Annotated[str | None, typer.Option("--category", help=f"One of: {', '.join(CATEGORIES)}.")] = None,
    as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List catalog entries."""
    if category is not None and category not in CATEGORIES:
        raise SpecError([ErrorItem("category", f"is not a category; one of: {', '.join(CATEGORIES)}")])
    found = search(text, category)
    if as_json:
        _out(json.dumps([e.summary() for e in found], indent=2))
        return
    if not found:
        _err("no catalog entry matches")
        return
    _out(f"{'KEY':<20} {'AUTH':<30} {'CATEGORIES':<30} NAME")
    for e in found:
        _out(f"{e.key:<20} {e.auth_style:<30} {','.join(e.meta.categories):<30} {e.name}")


@catalog_app.command("show")
@_handle_errors
def catalog_show(key: str, as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show an entry: what it is, how to set it up, its scopes, limits and spec."""
    entry = get_entry(key)
    if as_json:
        _out(json.dumps(entry.to_dict(), indent=2))
        return
    meta = entry.meta
    _out(f"{entry.name} ({entry.key}) - {entry.auth_style}")
    _out(meta.description)
    _out(f"categories: {', '.join(meta.categories)}")
    _out(f"docs: {meta.docs_url}")
    _out("setup:")
    for number, step in enumerate(meta.setup, 1):
        _out(f"  {number}. {step}")
    if entry.default_scopes:
        _out(f"default scopes: {' '.join(entry.default_scopes)}")
    for scope in meta.optional_scopes:
        _out(f"optional scope: {scope.name} - {scope.description}")
    _out(f"rate limit: {entry.spec.rate_limit.documented if entry.spec.rate_limit else '-'}")
    if entry.spec.pagination is not None:
        _out(f"pagination: {entry.spec.pagination.type}")
    _out("spec:")
    _out(dump_spec(entry.spec).rstrip())


@catalog_app.command("add")
@_handle_errors
def catalog_add(
    key: str,
    client_id: typing.Annotated[str | None, typer.Option("--client-id", help="Your OAuth app's client ID.")] = None,
    client_secret: typing.Annotated[
        str | None,
        typer.Option("--client-secret", help="Your OAuth app's client secret (asked for when left out)."),
    ] = None,
    scopes: typing.Annotated[
        str | None, typer.Option("--scopes", help="Scopes, space or comma separated (default: the entry's).")
    ] = None,
    new_key: typing.Annotated[
        str | None, typer.Option("--key", help="The integration's key (default: the entry's).")
    ] = None,
) -> None:
    """Create an integration from a catalog entry, with your own OAuth app's credentials."""
    entry = get_entry(key)
    if entry.needs_client and client_id and not client_secret:
        client_secret = typer.prompt("Client secret", hide_input=True)
    scope_list = None if scopes is None else [s for s in scopes.replace(",", " ").split() if s]
    spec = integration_from(entry, client_id=client_id, client_secret=client_secret, scopes=scope_list, key=new_key)

    async def work(broker: Broker) -> tuple[IntegrationRecord, str | None]:
        record, _ = await broker.save_integration(spec, update=False)
        return record, broker.redirect_uri_for(record.spec)

    record, redirect = _with_broker(work)
    _err(f"created: {record.key} from catalog entry {entry.key}")
    if redirect:
        _err(f"register this redirect URI with {entry.name}: {redirect}")


@catalog_app.command("docs")
@_handle_errors
def catalog_docs(
    output: typing.Annotated[Path, typer.Option("--output", help="Where to write the Markdown.")] = Path(
        "docs/catalog.md"
    ),
    check: typing.Annotated[bool, typer.Option("--check", help="Exit 1 if the file is not up to date.")] = False,
) -> None:
    """Write docs/catalog.md from the entries (or check that it is current)."""
    text = render_markdown()
    if check:
        if not output.exists() or output.read_text(encoding="utf-8") != text:
            _err(f"{output} is stale: run `authbridge catalog docs`")
            raise typer.Exit(1)
        _err(f"{output} is up to date")
        return
    output.write_text(text, encoding="utf-8")
    _err(f"wrote {output}")
