"""The hosted connect page: where an application's end user connects their own accounts, without an API key.

The backend creates a connect session (``POST /connect/sessions``) and hands ``connect_url``
(``/connect/<token>``) to the browser, as a link or through ``connect.js``. On first load the token
moves into an HttpOnly cookie scoped to ``/connect`` and the browser is sent to ``/connect/`` (the
token leaves the address bar and the history). OAuth flows started here are bound to this browser:
a second cookie, scoped to ``/oauth/callback``, must come back with the provider's redirect.

Every answer is ``no-store`` with ``Referrer-Policy: no-referrer`` and may not be framed (no iframes:
a plain link or a popup works everywhere).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import typing
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from authbridge.auth import Input, plugin_for
from authbridge.broker import ConnectionRecord, ConnectSessionRecord, FlowBinding
from authbridge.console.pages import MAX_FORM, Console, _read_form
from authbridge.errors import AuthBridgeError, NotFoundError, ParameterError
from authbridge.spec import Integration

__all__ = ["BINDING_COOKIE", "CONNECT_PREFIX", "SESSION_COOKIE", "install_connect_pages"]

CONNECT_PREFIX = "/connect"
#: The connect session's token, once it has left the URL.
SESSION_COOKIE = "authbridge_connect"
#: Set when the page was opened as a popup by connect.js: the result is posted to the opener.
POPUP_COOKIE = "authbridge_connect_popup"
#: A random value this browser holds; flows started here remember its hash and the callback
#: (api/routes/oauth.py, which reads the same name) checks it.
BINDING_COOKIE = "authbridge_binding"
_STATIC = Path(__file__).parent / "static"
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self' https: http:; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
_STATE_PAGES = {
    "expired": (
        "This link has expired",
        "Connect links last a short while. Go back to the application and start again.",
    ),
    "used": ("This link was already used", "It connected an account already. Go back to the application to see it."),
    "ended": ("This link was withdrawn", "The application ended this connect session. Go back and start again."),
    "unknown": (
        "This link is not valid",
        "Check that you opened the whole link, or ask the application for a new one.",
    ),
}


class _Pages:
    """The handlers, sharing the console's templates, signer and broker."""

    def __init__(self, console: Console) -> None:
        self.console = console

    @property
    def secure(self) -> bool:
        return self.console.secure

    # -- rendering ----------------------------------------------------------------------------

    def render(self, template: str, *, status: int = 200, **context: typing.Any) -> HTMLResponse:
        body = self.console.env.get_template(template).render(prefix=CONNECT_PREFIX, **context)
        return HTMLResponse(body, status_code=status, headers=_HEADERS)

    def message(self, status: int, heading: str, message: str) -> HTMLResponse:
        return self.render("connect/message.html", status=status, title=heading, heading=heading, message=message)

    def state_page(self, state: str) -> HTMLResponse:
        heading, message = _STATE_PAGES[state]
        return self.message(404 if state == "unknown" else 410, heading, message)

    def redirect(self, target: str) -> RedirectResponse:
        return RedirectResponse(target, status_code=303, headers=_HEADERS)

    async def session_of(self, request: Request) -> ConnectSessionRecord | None:
        token = request.cookies.get(SESSION_COOKIE)
        return await self.console.broker.sessions.find(token) if token else None

    async def open_session(self, request: Request) -> ConnectSessionRecord | HTMLResponse:
        """The browser's session when it can still be used, else the page that says why not."""
        session = await self.session_of(request)
        if session is None:
            return self.state_page("unknown")
        state = session.state(self.console.broker.clock())
        return session if state == "open" else self.state_page(state)

    def csrf(self, session: ConnectSessionRecord) -> str:
        return self.console.signer.token("connect", session.id)

    # -- pages --------------------------------------------------------------------------------

    async def start(self, request: Request) -> Response:
        """``/connect/<token>``: keep the token in a cookie and drop it from the address bar."""
        token = request.path_params["token"]
        session = await self.console.broker.sessions.find(token)
        if session is None:
            return self.state_page("unknown")
        state = session.state(self.console.broker.clock())
        if state != "open":
            return self.state_page(state)
        response = self.redirect(CONNECT_PREFIX + "/")
        max_age = max(1, int((session.expires_at - self.console.broker.clock()).total_seconds()))
        for name, value in [
            (SESSION_COOKIE, token),
            (POPUP_COOKIE, "1" if request.query_params.get("mode") == "popup" else ""),
        ]:
            if value:
                response.set_cookie(
                    name, value, max_age=max_age, path=CONNECT_PREFIX, httponly=True, samesite="lax", secure=self.secure
                )
            else:
                response.delete_cookie(name, path=CONNECT_PREFIX)
        return response

    async def home(self, request: Request) -> Response:
        """The session's integrations (or its one connection to re-authorize)."""
        session = await self.open_session(request)
        if isinstance(session, HTMLResponse):
            return session
        broker = self.console.broker
        if session.reconnect_id is not None:
            connection = await broker.store.connections.get(session.reconnect_id)
            spec = (await broker.get_integration(connection.integration_key)).spec
            return self.form_page(session, spec, connection=connection)
        specs = []
        for key in session.allowed_integrations or []:
            try:
                specs.append((await broker.get_integration(key)).spec)
            except NotFoundError:
                continue  # deleted since the session was made
        if len(specs) == 1:
            return self.redirect(f"{CONNECT_PREFIX}/i/{specs[0].key}")
        return self.render("connect/home.html", title="Connect an account", session=session, specs=specs)

    def form_page(
        self,
        session: ConnectSessionRecord,
        spec: Integration,
        *,
        connection: ConnectionRecord | None = None,
        values: dict[str, str] | None = None,
        errors: dict[str, list[str]] | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        fixed = session.parameters.get(spec.key, {})
        asked = [] if connection else [p for p in spec.parameters if p.name not in fixed]
        return self.render(
            "connect/form.html",
            status=status,
            title=f"Reconnect {spec.name}" if connection else f"Connect {spec.name}",
            session=session,
            spec=spec,
            connection=connection,
            asked=asked,
            credentials=_credential_inputs(spec, connection),
            redirects=plugin_for(spec.auth).redirects(spec),
            values=values or {},
            errors=errors or {},
            csrf=self.csrf(session),
            several=session.reconnect_id is None and len(session.allowed_integrations or []) > 1,
        )

    async def integration(self, request: Request) -> Response:
        """The form of one integration: the parameters the backend left open, and the secret for token or basic."""
        session = await self.open_session(request)
        if isinstance(session, HTMLResponse):
            return session
        key = request.path_params["key"]
        if session.reconnect_id is not None:
            connection = await self.console.broker.store.connections.get(session.reconnect_id)
            if connection.integration_key != key:
                return self.redirect(CONNECT_PREFIX + "/")
        elif key not in (session.allowed_integrations or []):
            return self.redirect(CONNECT_PREFIX + "/")
        else:
            connection = None
        try:
            spec = (await self.console.broker.get_integration(key)).spec
        except NotFoundError:
            return self.redirect(CONNECT_PREFIX + "/")
        if request.method == "GET":
            return self.form_page(session, spec, connection=connection)
        form = await _read_form(request)
        if form is None:
            return self.message(
                400, "The form could not be read", f"It was not a form, or larger than {MAX_FORM // 1024} KiB."
            )
        if not self.console.signer.check("connect", session.id, form.get("csrf")):
            return self.message(403, "This form expired", "Reload the page and try again.")
        return await self.submit(request, session, spec, connection, form)

    async def submit(
        self,
        request: Request,
        session: ConnectSessionRecord,
        spec: Integration,
        connection: ConnectionRecord | None,
        form: dict[str, str],
    ) -> Response:
        broker = self.console.broker
        secret_names = {p.name for p in spec.parameters if p.secret}
        values = {k: v for k, v in form.items() if k.startswith("param.") and k[6:] not in secret_names}
        parameters = {p.name: form.get(f"param.{p.name}", "") for p in spec.parameters}
        credentials = {i.name: form.get(f"cred.{i.name}", "") for i in _credential_inputs(spec, connection)}
        binding_value = request.cookies.get(BINDING_COOKIE) or secrets.token_urlsafe(32)
        binding = FlowBinding(session.id, hashlib.sha256(binding_value.encode()).hexdigest())
        done = f"{self.console.settings.public_url}{CONNECT_PREFIX}/done"
        try:
            if connection is not None:
                result = await broker.sessions.reconnect(
                    session, credentials=credentials, return_to=done, binding=binding
                )
            else:
                result = await broker.sessions.connect(
                    session, spec.key, parameters=parameters, credentials=credentials, return_to=done, binding=binding
                )
        except ParameterError as exc:
            errors: dict[str, list[str]] = {}
            for item in exc.errors:
                head, _, rest = item.path.partition(".")
                name = {"parameters": f"param.{rest}", "credentials": f"cred.{rest}"}.get(head, "")
                errors.setdefault(name, []).append(item.message if name else str(item))
            return self.form_page(session, spec, connection=connection, values=values, errors=errors, status=422)
        except AuthBridgeError as exc:
            return self.form_page(
                session, spec, connection=connection, values=values, errors={"": [exc.message]}, status=exc.status_code
            )
        if result.authorize_url:
            response = self.redirect(result.authorize_url)
            response.set_cookie(
                BINDING_COOKIE,
                binding_value,
                max_age=15 * 60,
                path="/oauth/callback",
                httponly=True,
                samesite="lax",
                secure=self.secure,
            )
            return response
        query = urlencode({"connection_id": result.connection.id, "status": result.connection.status})
        return self.redirect(f"{CONNECT_PREFIX}/done?{query}")

    async def done(self, request: Request) -> Response:
        """The outcome: back to the application (``return_to``), to the opener (popup), or a result page."""
        session = await self.session_of(request)
        if session is None:
            return self.state_page("unknown")
        broker = self.console.broker
        connection_id = request.query_params.get("connection_id", "")
        try:
            connection = await broker.store.connections.get(connection_id) if connection_id else None
        except NotFoundError:
            connection = None
        if connection is None or (connection.end_user or {}).get("id") != session.end_user.get("id"):
            return self.state_page("unknown")  # only the session's own end user's connections are reported
        error = request.query_params.get("error", "")
        if connection.status == "active" and not error:
            outcome = "connected"
        elif "access_denied" in error:
            outcome = "cancelled"
        else:
            outcome = "error"
        message = {
            "type": "authbridge:connect",
            "status": outcome,
            "connection_id": connection.id,
            "integration": connection.integration_key,
        }
        target = session.return_to
        back = None
        if target:
            separator = "&" if urlsplit(target).query else "?"
            back = f"{target}{separator}{urlencode({'connection_id': connection.id, 'status': outcome})}"
        popup = request.cookies.get(POPUP_COOKIE) == "1"
        if back and not popup:
            return self.redirect(back)
        origin = f"{urlsplit(target).scheme}://{urlsplit(target).netloc}" if target else ""
        try:
            integration_name = (await broker.get_integration(connection.integration_key)).spec.name
        except NotFoundError:
            integration_name = connection.integration_key
        return self.render(
            "connect/done.html",
            title={"connected": "Connected", "cancelled": "Not connected", "error": "Not connected"}[outcome],
            outcome=outcome,
            connection=connection,
            integration_name=integration_name,
            detail=error or connection.last_error or "",
            message_json=json.dumps(message),
            origin=origin if popup else "",
            back=back,
        )

    async def script(self, _request: Request) -> Response:
        """``/connect.js``: ``AuthBridgeConnect.open(connectUrl, {onEvent})`` for the application's pages."""
        return Response(
            (_STATIC / "connect.js").read_bytes(),
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
        )


def _credential_inputs(spec: Integration, connection: ConnectionRecord | None) -> tuple[Input, ...]:
    """What the user enters: the auth type's inputs; on a reconnect, only entered credentials are asked again."""
    plugin = plugin_for(spec.auth)
    return plugin.inputs(spec) if connection is None or plugin.entered(spec) else ()


def install_connect_pages(app: FastAPI, console: Console) -> None:
    """Add ``/connect.js`` and the ``/connect/...`` pages (after the API's ``/connect/sessions`` routes)."""
    pages = _Pages(console)
    both = ["GET", "POST"]
    for route in [
        Route("/connect.js", pages.script, methods=["GET"], include_in_schema=False),
        Route(f"{CONNECT_PREFIX}/", pages.home, methods=["GET"], include_in_schema=False),
        Route(f"{CONNECT_PREFIX}/done", pages.done, methods=["GET"], include_in_schema=False),
        Route(f"{CONNECT_PREFIX}/i/{{key}}", pages.integration, methods=both, include_in_schema=False),
        Mount(f"{CONNECT_PREFIX}/static", StaticFiles(directory=_STATIC), name="connect-static"),
        Route(f"{CONNECT_PREFIX}/{{token}}", pages.start, methods=["GET"], include_in_schema=False),
    ]:
        app.router.routes.append(route)
