"""The composition root: ``create_app(settings)`` builds the key ring, store and broker, mounts the edges."""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import hmac
import importlib.util
import logging
import os
import re
import secrets
import typing
from collections.abc import AsyncIterator

import aiohttp
import anyio
import httpx
from fastapi import FastAPI

from authbridge import __version__
from authbridge.api import error_response, install_api
from authbridge.api.docs import install_docs
from authbridge.api.gate import Gate
from authbridge.api.token_route import serve_token, token_request
from authbridge.broker import Broker, Policy, WebhookDispatcher
from authbridge.broker.background import BackgroundRefresher
from authbridge.broker.readiness import Lifecycle
from authbridge.broker.retention import Pruner
from authbridge.config import Settings
from authbridge.console import install_console
from authbridge.errors import ConfigError, CryptoError
from authbridge.logs import CONNECTION_ID, INTEGRATION, REQUEST_ID, JsonFormatter, request_id_of
from authbridge.metrics import Metrics
from authbridge.netguard import GuardedResolver
from authbridge.proxy import PROXY_PREFIX, SKIP_AUTO_HEADERS, Proxy, ProxyTimeouts
from authbridge.redact import RedactingFilter
from authbridge.store import FileKeyRing, KeyRing, Store, parse_key_ring
from authbridge.tracing import Tracer, configured_tracer
from authbridge.types import Clock, utcnow
from authbridge.upstream_http import LeanTransport

__all__ = [
    "ADMIN",
    "BOTH",
    "PUBLIC",
    "configure_logging",
    "console_secret",
    "create_app",
    "http_client",
    "open_key_ring",
    "open_store",
    "policy_for",
    "REFRESHER_GC_YOUNG",
    "proxy_session",
    "run_background",
    "settle_gc",
    "surface_of",
]


def open_key_ring(settings: Settings, *, create: bool = True) -> KeyRing:
    """The key ring from AUTHBRIDGE_ENCRYPTION_KEYS, else the key file (generated on first start)."""
    if settings.encryption_keys:
        try:
            return parse_key_ring(settings.encryption_keys)
        except CryptoError as exc:
            raise ConfigError(f"AUTHBRIDGE_ENCRYPTION_KEYS is not a valid key ring: {exc}") from None
    return FileKeyRing.open(settings.key_file, create=create)


def policy_for(settings: Settings) -> Policy:
    """The server's policy values, from its settings."""
    return Policy(
        hook_allowed=settings.hook_allowed,
        allow_http=settings.allow_http,
        redirect_uri=settings.redirect_uri,
        return_origin_allowed=settings.return_origin_allowed,
        refresh_deadline=3 * settings.http_timeout,
        cache_sync_interval=settings.cache_sync_interval,
        public_url=settings.public_url,
        max_upstream_body=settings.max_upstream_body,
        http_timeout=settings.http_timeout,
        max_parameter_length=settings.max_parameter_length,
        client_metadata_url=settings.client_metadata_url,
    )


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The one outbound client (token, revocation and test calls), behind the SSRF guard.

    httpx is the interface; the lean HTTP/1.1 client sends (``LeanTransport``; aiohttp for streamed
    bodies and HEAD): httpcore's pool slows down with many concurrent calls, as a refresh storm makes,
    and aiohttp's client costs more CPU per call than the rest of a refresh.
    """
    return httpx.AsyncClient(
        transport=LeanTransport(allow_private=settings.allow_private_networks),
        timeout=httpx.Timeout(settings.http_timeout, connect=min(5.0, settings.http_timeout)),
        follow_redirects=False,
        headers={"User-Agent": f"AuthBridge/{__version__}"},
    )


async def open_store(settings: Settings, *, clock: Clock = utcnow) -> Store:
    """Connect, migrate and verify the key ring against the stored data."""
    return await Store.open(settings.database_url, open_key_ring(settings), clock=clock)


def configure_logging(settings: Settings) -> None:
    """Log to stderr at the configured level, every record passed through the redacting filter.

    ``AUTHBRIDGE_LOG_FORMAT=json`` writes one JSON object per line (``logs.JsonFormatter``).
    """
    level = getattr(logging, settings.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    # httpx logs every request's full URL at INFO; a query may carry a token or a secret parameter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # httpcore's DEBUG traces print every answer's raw headers: a Set-Cookie session, a token in a header.
    logging.getLogger("httpcore").setLevel(logging.INFO)
    redactor = RedactingFilter()
    for name in ("", "authbridge", "uvicorn", "uvicorn.access", "uvicorn.error", "httpx"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(redactor)
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(redactor)


def proxy_session(settings: Settings) -> aiohttp.ClientSession:
    """The proxy's upstream client: aiohttp (measured faster), the SSRF guard in its resolver, no cookie jar.

    Upstream cookies are never kept: one session serves every user's connections.
    """
    connector = aiohttp.TCPConnector(
        limit=0, ttl_dns_cache=60, resolver=GuardedResolver(allow_private=settings.allow_private_networks)
    )
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=SKIP_AUTO_HEADERS,
    )


#: Allocations between two collections of the garbage collector's young generation in a process that
#: only refreshes (``authbridge refresher``; CPython's default: 700). Only garbage in reference cycles
#: waits for a collection; a refresh storm allocates a few hundred objects per refresh, and collecting
#: every 700 cost a tenth of the refresher's CPU (measured: 0.545 ms per refresh at 700, 0.48-0.49 at
#: 50,000). A server process keeps the default: its proxy measured slower with 50,000 (docs/performance.md).
REFRESHER_GC_YOUNG = 50_000


def settle_gc(young: int | None = None) -> None:
    """Move what the process built so far out of the collector's generations; ``young``: the young threshold.

    The objects of the started process (modules, the app, pools: a few hundred thousand) are frozen
    (``gc.freeze``): a refresh storm allocates enough to trigger full collections, and each rescanned
    all of them (measured: 0.7 s of GC per 1,000 refreshes before, 0.2 s after; docs/architecture.md,
    "Refresh storm (issue 14, target 3)").
    """
    gc.freeze()
    if young is not None:
        gc.set_threshold(young, *gc.get_threshold()[1:])


def loop_options() -> dict[str, typing.Any]:
    """``anyio.run``'s backend options for a process that runs on its own: uvloop where it is installed.

    ``authbridge run`` already runs on uvloop (uvicorn's choice, ``uvicorn[standard]``); ``authbridge
    refresher`` takes the same loop: its socket reads and writes and callbacks run in C (measured: 6 %
    fewer instructions per refresh, docs/architecture.md). Without uvloop (Windows, PyPy), asyncio's own.
    """
    return {"use_uvloop": True} if importlib.util.find_spec("uvloop") is not None else {}


async def run_background(
    broker: Broker,
    http: httpx.AsyncClient,
    stop: anyio.Event,
    clock: Clock = utcnow,
    *,
    first_delay: bool = False,
    retention_days: int = 30,
    refresh_interval: float = 30.0,
    refresh_concurrency: int = 32,
    gc_young: int | None = None,
) -> None:
    """The background work of a server or of ``authbridge refresher``: token refresh, webhook delivery, pruning.

    Every loop is safe on several replicas at once (refresh leases; delivery claims; idempotent deletes).
    ``retention_days=0`` keeps events forever.

    The garbage collector is settled first (``settle_gc(gc_young)``).
    """
    settle_gc(gc_young)
    refresher = BackgroundRefresher(
        broker.store,
        broker.connections.keeper,
        clock=clock,
        concurrency=refresh_concurrency,
        batch=2 * refresh_concurrency,
    )
    dispatcher = WebhookDispatcher(broker.store, http, clock=clock, metrics=broker.metrics)
    async with anyio.create_task_group() as group:
        group.start_soon(
            functools.partial(refresher.run_forever, stop, interval=refresh_interval, first_delay=first_delay)
        )
        group.start_soon(dispatcher.run_forever, stop)
        if retention_days:
            pruner = Pruner(broker.store, clock=clock, days=retention_days)
            group.start_soon(functools.partial(pruner.run_forever, stop, first_delay=first_delay))


_CONSOLE_LABEL = b"authbridge console sessions v1"


def console_secret(settings: Settings) -> bytes:
    """The key that signs console sessions and CSRF tokens: HMAC-SHA256 of a fixed label under a shared secret.

    The shared secret is AUTHBRIDGE_ENCRYPTION_KEYS when set (every replica has the same, and rotating
    it ends the sessions), else ``console.key`` in the data dir: 32 random bytes, mode 0600, made on
    first start. Nothing a browser sees reveals either.
    """
    if settings.encryption_keys:
        material = settings.encryption_keys.encode("utf-8")
    else:
        path = settings.data_dir / "console.key"
        if not path.exists():
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first: read theirs
            else:
                with os.fdopen(fd, "wb") as out:
                    out.write(secrets.token_bytes(32))
        material = path.read_bytes()
        if len(material) < 32:
            raise ConfigError(f"{path} is shorter than 32 bytes: delete it to make a new one (this ends the sessions)")
    return hmac.new(material, _CONSOLE_LABEL, hashlib.sha256).digest()


PUBLIC, ADMIN, BOTH = "public", "admin", "both"
#: What faces the internet: the OAuth callback, the connect pages and their script, discovery documents.
_PUBLIC_PREFIXES = ("/oauth/", "/connect/", "/.well-known/")
_PUBLIC_PATHS = frozenset({"/connect.js"})
#: Probes may reach either listener.
_BOTH_PATHS = frozenset({"/health", "/ready"})


def surface_of(path: str) -> str:
    """Which listener serves ``path`` when the admin surface listens apart (``AUTHBRIDGE_ADMIN_LISTEN``).

    Public: the OAuth callback and client metadata document (``/oauth/...``), the hosted connect pages,
    ``connect.js``, ``/.well-known/...``. Both:
    ``/health`` and ``/ready``. Admin: everything else — the management API (``/connect/sessions``
    included), the console, ``/docs``, ``/metrics`` and the proxy (the application's backend calls it).
    """
    if path in _BOTH_PATHS:
        return BOTH
    if path.startswith("/connect/sessions"):
        return ADMIN
    if path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES):
        return PUBLIC
    return ADMIN


class _AuthBridgeApp(FastAPI):
    """FastAPI, with ``/proxy/...`` dispatched before any of Starlette's middleware and routing.

    The proxy is the hot path; it handles its own errors and its own body limit (docs/performance.md).
    Every other request passes the gate first (API key before body, body size: ``api/gate.py``).
    With ``admin_port`` set, a request is served only on the listener of its surface (:func:`surface_of`).
    """

    gate: Gate
    admin_port: int | None = None
    tracer: Tracer | None = None

    async def __call__(self, scope: typing.Any, receive: typing.Any, send: typing.Any) -> None:
        if scope["type"] == "http":
            request_id = request_id_of(scope["headers"])
            REQUEST_ID.set(request_id.decode("ascii"))  # each request is its own task: nothing to reset
            path: str = scope["path"]
            if self.admin_port is not None and not self._on_its_listener(scope, path):
                response = error_response(404, "not_found", "Not Found")
                await response(scope, receive, _with_request_id(send, request_id))
                return
            if path.startswith(PROXY_PREFIX):
                proxy: Proxy = self.state.proxy
                await proxy.handle(scope, receive, send, request_id)
                return
            connection_id = token_request(scope)
            if connection_id is not None:  # as hot as the proxy for apps that read tokens: no framework either
                CONNECTION_ID.set(connection_id)
                await serve_token(self.state.broker, connection_id, scope, receive, _with_request_id(send, request_id))
                return
            _log_context(path)
            if self.tracer is not None:
                await self._traced(scope, receive, _with_request_id(send, request_id), self.tracer)
                return
            await self.gate(scope, receive, _with_request_id(send, request_id), super().__call__)
            return
        await super().__call__(scope, receive, send)

    def _on_its_listener(self, scope: typing.Any, path: str) -> bool:
        surface = surface_of(path)
        if surface == BOTH:
            return True
        server = scope.get("server")
        on_admin = server is not None and server[1] == self.admin_port
        return surface == (ADMIN if on_admin else PUBLIC)

    async def _traced(self, scope: typing.Any, receive: typing.Any, send: typing.Any, tracer: Tracer) -> None:
        """Serve an API, console or page request inside a server span named by its route template."""
        status = 500

        async def sending(message: typing.MutableMapping[str, typing.Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method: str = scope["method"]
        with tracer.server(method, scope["headers"], {"http.request.method": method}) as span:
            try:
                await self.gate(scope, receive, sending, super().__call__)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):  # the template (/connections/{connection_id}), never the path itself
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    tracer.failed(span, str(status))


_PATH_CONTEXT = re.compile(r"/(connections|integrations)/([^/]+)")


def _log_context(path: str) -> None:
    """The connection id or integration key a management path names, for the log lines of its request."""
    found = _PATH_CONTEXT.match(path)
    if found is not None:
        (CONNECTION_ID if found[1] == "connections" else INTEGRATION).set(found[2])


def _with_request_id(send: typing.Any, request_id: bytes) -> typing.Any:
    """``send`` that adds ``X-Request-ID`` to the answer (the proxy adds its own: ``Proxy.handle``)."""

    async def sending(message: typing.MutableMapping[str, typing.Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            headers.append((b"x-request-id", request_id))
            message = {**message, "headers": headers}
        await send(message)

    return sending


def create_app(settings: Settings, *, clock: Clock = utcnow, tracer_provider: typing.Any = None) -> FastAPI:
    """Build the ASGI app. The store is opened by the lifespan; building the app only reads the console key.

    ```
    app = create_app(Settings.from_env())
    uvicorn.run(app)
    ```

    ``tracer_provider`` (an OpenTelemetry ``TracerProvider``) turns tracing on with that provider;
    otherwise ``AUTHBRIDGE_OTEL`` decides. Metrics are collected when ``settings.metrics_enabled``.
    """
    metrics = Metrics() if settings.metrics_enabled else None
    tracer = Tracer(tracer_provider) if tracer_provider is not None else configured_tracer(settings.otel)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, typing.Any]]:
        store = await open_store(settings, clock=clock)
        http = http_client(settings)
        broker = Broker(store, http=http, policy=policy_for(settings), clock=clock, metrics=metrics, tracer=tracer)
        app.state.broker = broker
        session = proxy_session(settings)
        app.state.proxy = Proxy(
            broker,
            session,
            timeouts=ProxyTimeouts(connect=settings.proxy_connect_timeout, read=settings.proxy_read_timeout),
            allow_private=settings.allow_private_networks,
            metrics=metrics,
            tracer=tracer,
        )
        stop = anyio.Event()
        try:
            async with anyio.create_task_group() as group:
                # Always on: the caches of the proxy and API keys follow changes made by other processes.
                group.start_soon(broker.cache_sync.run_forever, stop)
                group.start_soon(broker.audit.run_forever, stop)
                if metrics is not None:
                    group.start_soon(metrics.watch_loop, stop)
                if settings.background_tasks:
                    # The first scan waits one interval, so a server's start is not slowed by it.
                    group.start_soon(
                        functools.partial(
                            run_background,
                            broker,
                            http,
                            stop,
                            clock,
                            first_delay=True,
                            retention_days=settings.event_retention_days,
                            refresh_interval=settings.refresh_interval,
                            refresh_concurrency=settings.refresh_concurrency,
                        )
                    )
                try:
                    yield {}
                finally:
                    stop.set()
        finally:
            lifecycle.stopping = True
            with contextlib.suppress(Exception):  # the database may be gone: its leases run out on their own
                released = await broker.connections.keeper.shutdown(settings.shutdown_timeout)
                if released:
                    logging.getLogger("authbridge").info("gave back %d refresh lease(s)", released)
            app.state.proxy.client.close()
            await session.close()
            await http.aclose()
            await store.close()

    app = _AuthBridgeApp(
        title="AuthBridge",
        version=__version__,
        description="Holds the credentials your application needs to call third-party APIs for its users.",
        lifespan=lifespan,
        # Counts a body's bytes as they are read: 413 once over (the gate refuses a long Content-Length at once).
        max_body_size=settings.max_body,
        docs_url=None,  # served by install_docs from the package (FastAPI's own loads Swagger UI from a CDN)
        redoc_url=None,
    )
    app.gate = Gate(app, max_body=settings.max_body)
    app.state.settings = settings
    app.state.metrics = metrics
    app.admin_port = settings.admin_listen[1] if settings.admin_listen else None
    app.tracer = tracer
    app.state.lifecycle = lifecycle = Lifecycle()
    install_api(app)
    install_docs(app)
    install_console(app, secret=console_secret(settings))
    return app
