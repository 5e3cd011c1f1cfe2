"""What every console page shares: the signed-in check, CSRF on POST, form parsing, rendering, error pages."""

from __future__ import annotations

import dataclasses
import logging
import time
import typing
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from authbridge.broker import Broker
from authbridge.config import Settings
from authbridge.console.drafts import SecretDrafts
from authbridge.console.limits import SignInLimiter
from authbridge.console.session import COOKIE, SESSION_SECONDS, Signer
from authbridge.errors import AuthBridgeError

__all__ = ["FLASH", "MAX_FORM", "Console", "Ctx", "Handler", "Notice", "PREFIX"]

logger = logging.getLogger("authbridge.console")

#: Where the console lives; the API keeps every other path.
PREFIX = "/console"
#: The largest form body read (a pasted YAML spec fits comfortably).
MAX_FORM = 1024 * 1024
_TEMPLATES = Path(__file__).parent / "templates"
#: The cookie that carries a POST's outcome to the page it redirects to (post-redirect-get), read once.
FLASH = "ab_flash"
_FLASH_SECONDS = 60
_FLASH_TEXT = 400


class Notice(typing.NamedTuple):
    """A message shown at the top of a page: ``ok``, ``error`` or ``info``; ``id`` names its element when set."""

    kind: str
    text: str
    id: str = ""


_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


class Console:
    """The console's shared parts: templates, the cookie signer, and the app whose broker and settings it uses."""

    def __init__(self, parent: typing.Any, secret: bytes) -> None:
        self.parent = parent
        self.signer = Signer(secret)
        settings: Settings = parent.state.settings
        self.drafts = SecretDrafts()
        self.sign_ins = SignInLimiter(settings.sign_in_per_minute, settings.sign_in_global_per_minute)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = _when

    @property
    def broker(self) -> Broker:
        return typing.cast(Broker, self.parent.state.broker)

    @property
    def settings(self) -> Settings:
        return typing.cast(Settings, self.parent.state.settings)

    @property
    def secure(self) -> bool:
        """Whether cookies get the Secure flag: when the console is served over https."""
        return urlsplit(self.settings.public_url).scheme == "https"


@dataclasses.dataclass
class Ctx:
    """One request as a page sees it."""

    console: Console
    request: Request
    claims: dict[str, typing.Any] | None
    form: dict[str, str] = dataclasses.field(default_factory=dict)

    def flash(self) -> list[Notice]:
        """The notices a redirect left for this session (post-redirect-get); the page that shows them clears them."""
        value = self.request.cookies.get(FLASH)
        claims = self.console.signer.open(value, now=time.time(), purpose="flash") if value else None
        if claims is None or not self.claims or claims.get("sid") != self.claims["sid"]:
            return []
        items = claims.get("notices")
        if not isinstance(items, list):
            return []
        return [Notice(*(str(part) for part in item[:3])) for item in items if isinstance(item, list) and item]

    @property
    def broker(self) -> Broker:
        return self.console.broker

    @property
    def csrf(self) -> str:
        """The CSRF token every form of this session carries."""
        return self.console.signer.token("csrf", self.claims["sid"]) if self.claims else ""

    def url(self, path: str) -> str:
        """A console URL (``url("/integrations")``)."""
        return PREFIX + path

    def render(self, template: str, *, status: int = 200, title: str = "", **context: typing.Any) -> HTMLResponse:
        """Render a page; every page gets the CSRF token, the signed-in subject, the ``url`` helper and the flash."""
        flash = self.flash()
        body = self.console.env.get_template(template).render(
            title=title,
            csrf=self.csrf,
            signed_in=self.claims is not None,
            who=_who(self.claims),
            url=self.url,
            path=self.request.url.path,
            now=self.console.broker.clock(),
            flash=flash,
            **context,
        )
        response = HTMLResponse(body, status_code=status, headers=_HEADERS)
        if FLASH in self.request.cookies:
            response.delete_cookie(FLASH, path=PREFIX, httponly=True, samesite="lax", secure=self.console.secure)
        return response

    def redirect(self, path: str, *notices: Notice) -> RedirectResponse:
        """303 to a console path (after a POST), carrying ``notices`` to the page in a short-lived signed cookie."""
        response = RedirectResponse(self.url(path), status_code=303, headers={"Cache-Control": "no-store"})
        if notices and self.claims:
            claims = {
                "sid": self.claims["sid"],
                "sub": "flash",
                "exp": int(time.time()) + _FLASH_SECONDS,
                "notices": [[n.kind, _short(n.text), n.id] for n in notices],
            }
            response.set_cookie(
                FLASH,
                self.console.signer.seal(claims, purpose="flash"),
                max_age=_FLASH_SECONDS,
                path=PREFIX,
                httponly=True,
                samesite="lax",
                secure=self.console.secure,
            )
        return response

    def error(self, status: int, heading: str, message: str) -> HTMLResponse:
        """An error page."""
        return self.render("error.html", status=status, title=heading, heading=heading, message=message)


def _short(text: str) -> str:
    return text if len(text) <= _FLASH_TEXT else text[: _FLASH_TEXT - 1] + "…"


def _who(claims: dict[str, typing.Any] | None) -> str:
    if not claims:
        return ""
    return "admin" if claims["sub"].startswith("admin:") else f"API key {claims.get('name', '')}".strip()


Handler = Callable[[Ctx], Awaitable[Response]]


async def _read_form(request: Request) -> dict[str, str] | None:
    """The urlencoded body as name → value (first wins); None when too large or not a form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    form: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(name, value.replace("\r\n", "\n"))
    return form


async def _session(console: Console, request: Request) -> dict[str, typing.Any] | None:
    """The claims of a valid session whose API key is still live or whose admin password is unchanged."""
    claims = console.signer.open(request.cookies.get(COOKIE), now=time.time())
    if claims is None:
        return None
    store = console.broker.store
    if not await store.console_sessions.live(claims["sid"]):
        return None  # signed out (or expired) on the server: a copied cookie stops working
    kind, _, ident = claims["sub"].partition(":")
    if kind == "admin":
        return claims if ident and ident == await store.admin.fingerprint() else None
    if kind == "key":
        keys = await store.api_keys.list()
        return claims if any(k.id == ident and k.revoked_at is None for k in keys) else None
    return None


def page(console: Console, handler: Handler, *, signed_in: bool = True) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a page handler: sign-in required, CSRF checked on POST, AuthBridge errors shown as pages."""

    async def endpoint(request: Request) -> Response:
        claims = await _session(console, request)
        ctx = Ctx(console, request, claims)
        if signed_in and claims is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method != "GET":
                target = PREFIX + "/"
            return RedirectResponse(f"{PREFIX}/sign-in?next={quote(target, safe='/')}", status_code=303)
        if request.method == "POST":
            form = await _read_form(request)
            if form is None:
                return ctx.error(400, "Bad request", "The form could not be read (not a form, or larger than 1 MiB).")
            ctx.form = form
            if signed_in and not console.signer.check("csrf", claims["sid"] if claims else None, form.get("csrf")):
                return ctx.error(403, "Forbidden", "The form's security token is missing or wrong. Reload the page.")
        try:
            return await handler(ctx)
        except AuthBridgeError as exc:
            heading = {404: "Not found", 409: "Conflict", 401: "Not allowed"}.get(exc.status_code, "Something failed")
            if exc.status_code >= 500 and exc.status_code not in {502, 503}:
                logger.error("%s: %s", exc.code, exc.message)
            return ctx.error(exc.status_code, heading, exc.message)

    return endpoint


def session_cookie(response: Response, console: Console, value: str) -> None:
    """Set the session cookie: HttpOnly, SameSite=Lax, Secure over https, scoped to the console."""
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_SECONDS,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=console.secure,
    )
