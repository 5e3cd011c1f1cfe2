"""Webhooks in the console: list them with their delivery counts, add one (its secret shown once), remove one."""

from __future__ import annotations

import ipaddress
import urllib.parse

from starlette.responses import Response

from authbridge.console.pages import Ctx
from authbridge.errors import ConfigError
from authbridge.netguard import is_public_address

__all__ = ["MAX_URL", "webhook_remove", "webhooks_page"]

#: The longest webhook URL accepted (browsers and proxies commonly stop near 2,000 characters).
MAX_URL = 2048


def _url_error(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` cannot be a webhook before the store's own check (a sentence for the field), or None.

    The store's ``check_webhook_url`` (run by ``webhooks.add``) refuses what is not an absolute
    http(s) URL with a host and no userinfo; this adds the length cap and, unless private networks
    are allowed, refuses a loopback, private or link-local address given literally (the SSRF guard
    still checks every address actually connected to when a delivery is sent).
    """
    if not url:
        return "Give the URL that receives the events."
    if len(url) > MAX_URL:
        return f"The URL is longer than {MAX_URL} characters."
    if allow_private:
        return None
    try:
        host = (urllib.parse.urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return None  # the store's check words this one
    try:
        ipaddress.ip_address(host)
    except ValueError:
        private = host == "localhost" or host.endswith(".localhost")
    else:
        private = not is_public_address(host)
    if private:
        return (
            "The URL points at a loopback, private or link-local address, which this server does not call "
            "(AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS is off)."
        )
    return None


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + "."


async def webhooks_page(ctx: Ctx) -> Response:
    """GET: the webhooks and the form; POST: add one and show its signing secret this once."""
    sid = str(ctx.claims["sid"]) if ctx.claims else ""
    created = ctx.console.drafts.take(sid, ctx.request.query_params.get("created", ""))
    error: str | None = None
    url = ""
    if ctx.request.method == "POST":
        url = ctx.form.get("url", "").strip()
        error = _url_error(url, allow_private=ctx.console.settings.allow_private_networks)
        if error is None:
            try:
                record, secret = await ctx.broker.store.webhooks.add(url)  # check_webhook_url runs first
            except ConfigError as exc:
                error = _sentence(exc.message)
            else:
                # Post-redirect-get: the secret waits server-side, shown once by the page redirected to.
                draft = ctx.console.drafts.keep(sid, {"secret": secret, "url": record.url})
                return ctx.redirect(f"/webhooks?created={draft}")
    hooks = await ctx.broker.store.webhooks.list()
    return ctx.render(
        "webhooks.html",
        status=422 if error else 200,
        title="Webhooks",
        hooks=hooks,
        typed_url=url[:MAX_URL] if error else "",
        error=error,
        created_secret=created.get("secret"),
        created_url=created.get("url", ""),
        removed=ctx.request.query_params.get("removed") == "1",
    )


async def webhook_remove(ctx: Ctx) -> Response:
    """Remove one webhook (its pending deliveries are dropped; the events stay)."""
    await ctx.broker.store.webhooks.remove(str(ctx.request.path_params["webhook_id"]))
    return ctx.redirect("/webhooks?removed=1")
