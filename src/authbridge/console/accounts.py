"""Connected-account pages: list, connect (with the OAuth redirect), the account page and its actions, delete."""

from __future__ import annotations

import typing
from datetime import datetime
from urllib.parse import urlencode

from starlette.responses import RedirectResponse, Response

from authbridge.auth import Input, plugin_for
from authbridge.auth.lifecycle import effective_window
from authbridge.broker import ConnectionFilter, ConnectionRecord
from authbridge.broker.connect import FLOW_TTL
from authbridge.console.pages import PREFIX, Ctx, Notice
from authbridge.errors import AuthBridgeError, ParameterError, TemplateError
from authbridge.spec import Integration

__all__ = [
    "Status",
    "account_delete",
    "account_edit",
    "account_page",
    "account_refresh",
    "account_reconnect",
    "account_returned",
    "account_test",
    "accounts_list",
    "connect",
    "credential_inputs",
    "status_of",
]


class Status(typing.NamedTuple):
    """A badge: its CSS kind and its words."""

    kind: str
    label: str


def status_of(connection: ConnectionRecord, spec: Integration | None, now: datetime) -> Status:
    """The badge of a connection: active, expiring soon, expired, needs re-auth, error, pending, revoked."""
    if connection.status == "active":
        expires = connection.expires_at
        if expires is not None and expires <= now:
            return Status("expiring", "expired")
        if expires is not None and spec is not None:
            # Relative to the token's lifetime (the refresh rule's window): a healthy 5-minute token is not
            # "expiring soon" all its life, only in its last half.
            obtained = connection.last_refreshed_at
            lifetime = expires - obtained if obtained is not None else None
            if expires - now <= effective_window(spec.refresh, lifetime):
                return Status("expiring", "expiring soon")
        return Status("active", "active")
    if connection.status == "pending" and connection.updated_at + FLOW_TTL <= now:
        # The login was abandoned: its flow (10 minutes) has expired; Reconnect or delete it.
        return Status("error", "expired")
    labels = {"needs_reauth": ("reauth", "needs re-auth"), "pending": ("pending", "pending")}
    kind, label = labels.get(connection.status, ("error", connection.status))
    return Status(kind, label)


def credential_inputs(spec: Integration) -> tuple[Input, ...]:
    """The credentials a user enters to connect, as the integration's auth type asks for them."""
    return plugin_for(spec.auth).inputs(spec)


def _id(ctx: Ctx) -> str:
    return str(ctx.request.path_params["connection_id"])


#: Accounts shown per page of the list.
PAGE_SIZE = 100


async def accounts_list(ctx: Ctx) -> Response:
    """Connected accounts, filtered (integration, status, end user, organization, tag), a page at a time."""
    query = ctx.request.query_params
    filters = {
        name: query.get(name, "").strip()[:255]
        for name in ("q", "integration", "status", "end_user_id", "organization_id", "tag")
    }
    wanted = filters["integration"] or None
    specs = {r.key: r.spec for r in await ctx.broker.list_integrations()}
    now = ctx.broker.clock()
    tag_key, sep, tag_value = filters["tag"].partition(":")
    where = ConnectionFilter(
        integration_key=wanted,
        status=filters["status"] or None,
        end_user_id=filters["end_user_id"] or None,
        organization_id=filters["organization_id"] or None,
        tags=((tag_key, tag_value),) if sep and tag_key else (),
        search=filters["q"] or None,
    )
    try:
        records, next_cursor = await ctx.broker.store.connections.page(
            where, limit=PAGE_SIZE, cursor=query.get("cursor") or None
        )
    except ParameterError:
        records, next_cursor = [], None  # a cursor from elsewhere: show the first page's filters, nothing more
    total = await ctx.broker.store.connections.count(where)
    rows = [{"record": c, "status": status_of(c, specs.get(c.integration_key), now)} for c in records]
    next_query = urlencode({**{k: v for k, v in filters.items() if v}, "cursor": next_cursor}) if next_cursor else ""
    return ctx.render(
        "accounts.html",
        title="Connected accounts",
        rows=rows,
        integrations=sorted(specs),
        wanted=wanted or "",
        filters=filters,
        statuses=["pending", "active", "needs_reauth", "revoked", "error"],
        next_query=next_query,
        first_query=urlencode({k: v for k, v in filters.items() if v}),
        paged=bool(query.get("cursor")),
        total=total,
        deleted=query.get("deleted") == "1",
    )


def _connect_page(
    ctx: Ctx,
    spec: Integration,
    *,
    values: dict[str, str],
    errors: dict[str, list[str]],
    status: int = 200,
    warning: str = "",
) -> Response:
    return ctx.render(
        "connect.html",
        status=status,
        title="Connect an MCP server by its URL" if spec.key == "mcp" else f"Connect an account to {spec.name}",
        spec=spec,
        credentials=credential_inputs(spec),
        values=values,
        errors=errors,
        redirects=plugin_for(spec.auth).redirects(spec),
        warning=warning,
    )


def _return_to(ctx: Ctx) -> str:
    return f"{ctx.console.settings.public_url}{PREFIX}/accounts/returned"


async def connect(ctx: Ctx) -> Response:
    """The connect form; on submit, create the account and send the browser to the provider when needed."""
    key = ctx.request.query_params.get("integration") or ctx.form.get("integration", "")
    spec = (await ctx.broker.get_integration(key)).spec
    if ctx.request.method == "GET":
        return _connect_page(ctx, spec, values={"name": ""}, errors={})
    # Secret values are never sent back: only the non-secret ones refill the form after a problem.
    secrets = {p.name for p in spec.parameters if p.secret}
    values = {k: v for k, v in ctx.form.items() if k.startswith(("param.", "name")) and k[6:] not in secrets}
    parameters = {p.name: ctx.form.get(f"param.{p.name}", "") for p in spec.parameters}
    credentials = {i.name: ctx.form.get(f"cred.{i.name}", "") for i in credential_inputs(spec)}
    redirects = plugin_for(spec.auth).redirects(spec)
    name = ctx.form.get("name", "").strip()
    if name and not ctx.form.get("confirm_duplicate"):
        alike, _next = await ctx.broker.store.connections.page(
            ConnectionFilter(integration_key=spec.key, search=name), limit=50
        )
        twins = [c for c in alike if c.name == name]
        if twins:
            warning = (
                f"An account named {name!r} already exists in {spec.name}. "
                "Connect again to create a second one, or change the name."
            )
            return _connect_page(ctx, spec, values=values, errors={}, warning=warning)
    try:
        result = await ctx.broker.connections.create(
            integration_key=spec.key,
            name=ctx.form.get("name", "").strip(),
            parameters=parameters,
            credentials=credentials,
            return_to=_return_to(ctx) if redirects else None,
        )
    except ParameterError as exc:
        errors: dict[str, list[str]] = {}
        for item in exc.errors:
            head, _, rest = item.path.partition(".")
            name = {"parameters": f"param.{rest}", "credentials": f"cred.{rest}", "name": "name"}.get(head, "")
            errors.setdefault(name, []).append(item.message if name else str(item))
        return _connect_page(ctx, spec, values=values, errors=errors, status=422)
    except (TemplateError, AuthBridgeError) as exc:
        return _connect_page(ctx, spec, values=values, errors={"": [exc.message]}, status=exc.status_code)
    if result.authorize_url:
        return RedirectResponse(result.authorize_url, status_code=303, headers={"Referrer-Policy": "no-referrer"})
    return ctx.redirect(f"/accounts/{result.connection.id}?created=1")


async def account_returned(ctx: Ctx) -> Response:
    """Where the OAuth callback sends the browser back: on to the account page, which shows the outcome."""
    connection_id = ctx.request.query_params.get("connection_id", "")
    record, _scopes = await ctx.broker.connections.view(connection_id)
    return ctx.redirect(f"/accounts/{record.id}?returned=1")


class Snippet(typing.NamedTuple):
    """One line of the "How to call" panel: its element id, label and text (never a token or key)."""

    id: str
    label: str
    text: str
    lines: int = 1


def how_to_call(ctx: Ctx, record: ConnectionRecord, spec: Integration) -> list[Snippet]:
    """The account's id, proxy URL, a curl line and an SDK snippet; the API key is left as an environment variable."""
    public = ctx.console.settings.public_url.rstrip("/")
    path = spec.test.path if spec.test is not None and "{" not in spec.test.path else "/"
    path = "/" + path.lstrip("/")
    proxy = f"{public}/proxy/{record.id}"
    curl = f'curl -H "Authorization: Bearer $AUTHBRIDGE_API_KEY" {proxy}{path}'
    sdk = (
        "import os\n"
        "from authbridge import AuthBridgeClient\n\n"
        f'with AuthBridgeClient("{public}", os.environ["AUTHBRIDGE_API_KEY"]) as client:\n'
        f'    response = client.request("{record.id}", "GET", "{path}")\n'
        "    print(response.status_code, response.text)"
    )
    return [
        Snippet("call-id", "Account id", record.id),
        Snippet("call-proxy", "Proxy URL (append the provider's API path)", proxy + "/"),
        Snippet("call-curl", "curl (an API key with the proxy scope in AUTHBRIDGE_API_KEY)", curl, 2),
        Snippet("call-sdk", "Python SDK", sdk, 6),
    ]


async def _account(ctx: Ctx, *, notice: tuple[str, str] | None = None, status: int = 200) -> Response:
    record, scopes = await ctx.broker.connections.view(_id(ctx))
    spec = (await ctx.broker.get_integration(record.integration_key)).spec
    query = ctx.request.query_params
    if notice is None and query.get("returned") == "1":
        if record.status == "active":
            notice = ("ok", "Connected: the provider authorized the account.")
        else:
            notice = ("error", f"The authorization did not complete: {record.last_error or record.status}")
    elif notice is None and query.get("created") == "1":
        notice = ("ok", "Account created.")
    events = await ctx.broker.store.events.list(connection_id=record.id, limit=20)
    return ctx.render(
        "account.html",
        status=status,
        title=record.name,
        record=record,
        spec=spec,
        scopes=scopes,
        status_badge=status_of(record, spec, ctx.broker.clock()),
        parameters=record.public_parameters(),
        events=events,
        notice=notice,
        refreshable=plugin_for(spec.auth).refreshable(spec),
        snippets=how_to_call(ctx, record, spec),
        hint=_hint(spec, record.last_error or (notice[1] if notice and notice[0] == "error" else "")),
    )


def _hint(spec: Integration, error: str) -> tuple[str, str] | None:
    """The plugin's advice on an error, with the anchor of the integration form's field to fix."""
    found = plugin_for(spec.auth).error_hint(spec, error) if error else None
    if found is None:
        return None
    text, field = found
    anchor = field if field == "redirect-uri" else "f-" + field.replace(".", "-")
    return text, f"/integrations/{spec.key}/edit#{anchor}"


async def account_page(ctx: Ctx) -> Response:
    """One account: status, expiry, warning, last error, parameters (secret ones masked), recent events."""
    return await _account(ctx)


def _back(ctx: Ctx, *notices: Notice) -> Response:
    """Post-redirect-get: back to the account page, the outcome carried by the flash."""
    return ctx.redirect(f"/accounts/{_id(ctx)}", *notices)


async def account_test(ctx: Ctx) -> Response:
    """Run the integration's test request with the account's credentials."""
    await ctx.broker.connections.view(_id(ctx))  # an unknown id is a 404 page, not a redirect
    try:
        result = await ctx.broker.connections.test(_id(ctx))
    except AuthBridgeError as exc:
        return _back(ctx, Notice("error", f"Test failed: {exc.message}"))
    ok = result.ok
    return _back(ctx, Notice("ok" if ok else "error", f"Test {'passed' if ok else 'failed'}: {result.detail}"))


async def account_refresh(ctx: Ctx) -> Response:
    """Refresh the token now."""
    await ctx.broker.connections.view(_id(ctx))
    try:
        creds = await ctx.broker.connections.refresh(_id(ctx), force=True)
    except AuthBridgeError as exc:
        return _back(ctx, Notice("error", f"Refresh failed: {exc.message}"))
    expiry = f"; it expires {creds.expires_at:%Y-%m-%d %H:%M:%S UTC}" if creds.expires_at else ""
    return _back(ctx, Notice("ok", f"Token refreshed{expiry}."))


async def account_reconnect(ctx: Ctx) -> Response:
    """Authorize again (to the provider), or fetch a new token for the other token grants."""
    await ctx.broker.connections.view(_id(ctx))
    try:
        result = await ctx.broker.connections.reconnect(_id(ctx), return_to=_return_to(ctx))
    except AuthBridgeError as exc:
        return _back(ctx, Notice("error", f"Reconnect failed: {exc.message}"))
    if result.authorize_url:
        return RedirectResponse(result.authorize_url, status_code=303, headers={"Referrer-Policy": "no-referrer"})
    return _back(ctx, Notice("ok", "Reconnected: a new token was fetched."))


def _form_errors(exc: ParameterError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for item in exc.errors:
        head, _, rest = item.path.partition(".")
        name = {"parameters": f"param.{rest}", "credentials": f"cred.{rest}" if rest else "credentials", "name": "name"}
        field = name.get(head, "")
        errors.setdefault(field, []).append(item.message if field else str(item))
    return errors


async def account_edit(ctx: Ctx) -> Response:
    """Change an account in place (same id): its name, parameters, and entered credentials (rotate a token)."""
    record, _scopes = await ctx.broker.connections.view(_id(ctx))
    spec = (await ctx.broker.get_integration(record.integration_key)).spec
    plugin = plugin_for(spec.auth)
    credentials = credential_inputs(spec) if plugin.entered(spec) else ()
    secrets = {p.name for p in spec.parameters if p.secret}
    values = {"name": record.name, **{f"param.{k}": v for k, v in record.parameters.items() if k not in secrets}}
    errors: dict[str, list[str]] = {}
    if ctx.request.method == "POST":
        values = {k: v for k, v in ctx.form.items() if k == "name" or (k.startswith("param.") and k[6:] not in secrets)}
        parameters = {
            p.name: ctx.form.get(f"param.{p.name}", "")
            for p in spec.parameters
            if not p.secret or ctx.form.get(f"param.{p.name}")
        }
        given = {i.name: ctx.form.get(f"cred.{i.name}", "") for i in credentials}
        try:
            await ctx.broker.connections.edit(
                record.id,
                name=ctx.form.get("name", ""),
                parameters=parameters,
                credentials=given if any(given.values()) else None,
            )
        except ParameterError as exc:
            errors = _form_errors(exc)
        else:
            return ctx.redirect(f"/accounts/{record.id}", Notice("ok", "Changes saved."))
    return ctx.render(
        "account_edit.html",
        status=422 if errors else 200,
        title=f"Edit {record.name}",
        record=record,
        spec=spec,
        values=values,
        errors=errors,
        credentials=credentials,
        provider_token=plugin.stores_credentials(spec) and not plugin.entered(spec),
    )


async def account_delete(ctx: Ctx) -> Response:
    """Confirm, then revoke upstream and delete; the page shows what the revocation did."""
    record, _scopes = await ctx.broker.connections.view(_id(ctx))
    spec = (await ctx.broker.get_integration(record.integration_key)).spec
    revokes = plugin_for(spec.auth).revokes(spec)
    if ctx.request.method == "GET":
        return ctx.render("account_delete.html", title=f"Delete {record.name}", record=record, revokes=revokes)
    result = await ctx.broker.connections.delete(record.id)
    if result.revoked:
        revocation = Notice("ok", "Revoked at the provider: its tokens no longer work.", "revocation")
    elif revokes:
        revocation = Notice(
            "error",
            f"The revocation failed: {result.revoke_error}. The account was deleted here anyway; "
            "revoke the grant at the provider.",
            "revocation",
        )
    else:
        revocation = Notice("info", "Nothing was revoked: the integration has no revocation endpoint.", "revocation")
    done = Notice("ok", f"The account {record.name} was deleted.")
    return ctx.redirect(f"/accounts?integration={record.integration_key}", done, revocation)
