"""API keys in the console: list them with their scopes and last use, create one (shown once), revoke."""

from __future__ import annotations

from starlette.responses import Response

from authbridge.broker import SCOPES
from authbridge.console.pages import Ctx
from authbridge.errors import ParameterError

__all__ = ["keys_page", "key_revoke"]

_SCOPE_HELP = {
    "admin": "everything, the console included",
    "connect": "create and end connect sessions (what a web app's backend needs)",
    "connections:read": "list and show connections, read events",
    "connections:write": "create, refresh, test, reconnect and delete connections",
    "proxy": "call APIs through /proxy",
    "token": "read access tokens",
}


async def keys_page(ctx: Ctx) -> Response:
    """GET: the keys and the form; POST: create a key and show it this once."""
    sid = str(ctx.claims["sid"]) if ctx.claims else ""
    created: str | None = ctx.console.drafts.take(sid, ctx.request.query_params.get("created", "")).get("key")
    errors: list[str] = []
    name = ""
    chosen: list[str] = ["admin"]
    if ctx.request.method == "POST":
        name = ctx.form.get("name", "").strip()[:200]
        chosen = [s for s in SCOPES if ctx.form.get(f"scope.{s}")]
        if not name:
            errors.append("Give the key a name (what it is for).")
        else:
            try:
                key, _record = await ctx.broker.create_api_key(name, chosen)
            except ParameterError as exc:
                errors.extend(e.message for e in exc.errors)
            else:
                # Post-redirect-get: the new key waits server-side, shown once by the page redirected to.
                return ctx.redirect(f"/keys?created={ctx.console.drafts.keep(sid, {'key': key})}")
    keys = await ctx.broker.store.api_keys.list()
    return ctx.render(
        "keys.html",
        status=422 if errors else 200,
        title="API keys",
        keys=keys,
        scopes=[(s, _SCOPE_HELP[s]) for s in SCOPES],
        chosen=chosen,
        name="" if created else name,
        created=created,
        errors=errors,
        revoked=ctx.request.query_params.get("revoked") == "1",
    )


async def key_revoke(ctx: Ctx) -> Response:
    """Revoke one key (it stops working at once in this process, within the cache time elsewhere)."""
    await ctx.broker.store.api_keys.revoke(str(ctx.request.path_params["key_id"]))
    return ctx.redirect("/keys?revoked=1")
