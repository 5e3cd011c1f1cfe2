"""Sign-in (an API key or the admin password), sign-out, the home redirect and the events page."""

from __future__ import annotations

import secrets
import time
import typing
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from starlette.responses import RedirectResponse, Response

from authbridge.console.limits import SignInLimiter
from authbridge.console.pages import PREFIX, Ctx, session_cookie
from authbridge.console.session import COOKIE, LOGIN_COOKIE, SESSION_SECONDS, new_sid, safe_next

__all__ = ["EVENT_TYPES", "events_page", "home", "sign_in", "sign_out"]

EVENT_TYPES = (
    "connect_session.created",
    "connect_session.ended",
    "connection.authorization_failed",
    "connection.authorized",
    "connection.created",
    "connection.deleted",
    "connection.reauthorization_needed",
    "connection.recovered",
    "connection.refresh_failed",
    "connection.refreshed",
    "connection.revoked",
    "connection.tested",
    "connection.updated",
    "integration.created",
    "integration.deleted",
    "integration.updated",
    "token.read",
)


async def home(ctx: Ctx) -> Response:
    """The console's start: the integrations."""
    return ctx.redirect("/integrations")


def _sign_in_page(ctx: Ctx, *, failed: bool, status: int = 200, limited: str = "") -> Response:
    """The sign-in form; a fresh nonce cookie carries its CSRF token (double submit, signed)."""
    nonce = secrets.token_urlsafe(16)
    target = safe_next(ctx.form.get("next") or ctx.request.query_params.get("next"), prefix=PREFIX)
    response = ctx.render(
        "sign_in.html",
        status=status,
        title="Sign in",
        failed=failed,
        limited=limited,
        next=target,
        login_csrf=ctx.console.signer.token("login", nonce),
    )
    response.set_cookie(
        LOGIN_COOKIE, nonce, max_age=3600, path=PREFIX, httponly=True, samesite="lax", secure=ctx.console.secure
    )
    return response


async def sign_in(ctx: Ctx) -> Response:
    """Check an API key or the admin password; start a new session (new id) on success."""
    if ctx.request.method == "GET":
        if ctx.claims is not None:
            return ctx.redirect("/")
        return _sign_in_page(ctx, failed=False)
    wait = ctx.console.sign_ins.attempt(ctx.request.client.host if ctx.request.client else "")
    if wait > 0:
        seconds = SignInLimiter.retry_after(wait)
        message = f"Too many sign-in attempts. Wait {seconds} seconds, then try again."
        response = _sign_in_page(ctx, failed=False, status=429, limited=message)
        response.headers["Retry-After"] = str(seconds)
        return response
    nonce = ctx.request.cookies.get(LOGIN_COOKIE)
    if not ctx.console.signer.check("login", nonce, ctx.form.get("csrf")):
        return ctx.error(403, "Forbidden", "The sign-in form expired or its security token is wrong. Reload the page.")
    secret = ctx.form.get("secret", "").strip()
    store = ctx.broker.store
    subject, name = None, ""
    key = await store.api_keys.verify(secret) if secret else None
    if key is not None and "admin" not in key.scopes:
        key = None  # the console is the admin surface: a connect- or proxy-only key cannot sign in
    if key is not None:
        subject, name = f"key:{key.id}", key.name
    elif secret:
        fingerprint = await store.admin.verify(secret)
        subject = f"admin:{fingerprint}" if fingerprint else None
    if subject is None:
        return _sign_in_page(ctx, failed=True, status=401)
    sid = new_sid()
    claims = {"sid": sid, "sub": subject, "name": name[:40], "exp": int(time.time()) + SESSION_SECONDS}
    await store.console_sessions.start(sid, subject, ctx.broker.clock() + timedelta(seconds=SESSION_SECONDS))
    response = RedirectResponse(safe_next(ctx.form.get("next"), prefix=PREFIX), status_code=303)
    session_cookie(response, ctx.console, ctx.console.signer.seal(claims))
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


async def sign_out(ctx: Ctx) -> Response:
    """End the session on the server (a copy of the cookie stops working too) and remove the cookie."""
    if ctx.claims is not None:
        await ctx.broker.store.console_sessions.end(ctx.claims["sid"])
    response = ctx.redirect("/sign-in")
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="lax", secure=ctx.console.secure)
    return response


#: Events per page of the events list.
EVENTS_PAGE = 100


def _moment(text: str) -> datetime | None:
    """A ``datetime-local`` input's value (or an ISO 8601 time) as UTC; None when empty or not a time."""
    try:
        when = datetime.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


async def events_page(ctx: Ctx) -> Response:
    """Events, newest first, filtered by type, integration, account and time range, a page at a time with a count."""
    query = ctx.request.query_params
    filters = {
        name: query.get(name, "").strip()[:255] for name in ("type", "integration", "connection", "since", "until")
    }
    since, until = _moment(filters["since"]), _moment(filters["until"])
    where: dict[str, typing.Any] = {
        "type": filters["type"] or None,
        "integration_key": filters["integration"] or None,
        "connection_id": filters["connection"] or None,
        "since": since,
        "until": until,
    }
    cursor = query.get("cursor", "")
    before_id = int(cursor) if cursor.isdigit() and len(cursor) <= 18 else None
    events = await ctx.broker.store.events.list(**where, before_id=before_id, limit=EVENTS_PAGE + 1)
    more = len(events) > EVENTS_PAGE
    events = events[:EVENTS_PAGE]
    total = await ctx.broker.store.events.count(**where)
    kept = {k: v for k, v in filters.items() if v}
    next_query = urlencode({**kept, "cursor": events[-1].id}) if more and events else ""
    keys = sorted(r.key for r in await ctx.broker.list_integrations())
    return ctx.render(
        "events.html",
        title="Events",
        events=events,
        filters=filters,
        bad_times=[name for name in ("since", "until") if filters[name] and _moment(filters[name]) is None],
        types=EVENT_TYPES,
        integrations=keys,
        total=total,
        paged=before_id is not None,
        first_query=urlencode(kept),
        next_query=next_query,
    )
