"""AuthBridge in your own process, without the server: the broker on your database, and an ``httpx.Auth``.

```
async with Bridge.open("postgresql+asyncpg://ab@db/authbridge") as bridge:
    base = await bridge.base_url(connection_id)
    async with httpx.AsyncClient(auth=bridge.auth(connection_id), base_url=base) as api:
        response = await api.get("/user")     # token injected; refreshed and retried once on a 401
```

The bridge is built like the server's lifespan builds its broker (``app.open_store``,
``app.http_client``, ``app.policy_for``), so it shares the server's database, key ring and rules.
It runs no background refresher: tokens are refreshed when used (``authbridge refresher`` or a
server does the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Mapping
from types import TracebackType
from urllib.parse import unquote

import httpx

from authbridge.app import http_client, open_store, policy_for
from authbridge.auth import AuthContext, credential_headers_and_query, plugin_for
from authbridge.auth.lifecycle import refresh_on_rejection
from authbridge.auth.placement import base_url
from authbridge.broker import Broker, Connections, FreshToken
from authbridge.broker.limits import IDEMPOTENT, Limiter, is_limited, provider_wait, retry_delay
from authbridge.config import Settings
from authbridge.errors import PaginationError, UnsafeValueError
from authbridge.paging import Pager, PageRequest, PageRule, aiterate
from authbridge.spec import Integration
from authbridge.store import ConnectionRecord, CredentialRecord
from authbridge.types import Clock, utcnow

__all__ = ["Bridge", "ConnectionAuth"]


def _segments(url: httpx.URL) -> list[str] | None:
    """The decoded path segments of ``url`` (a trailing slash dropped); None when one is ``.`` or ``..``.

    Compared decoded because the server decodes them: ``/v1/%2e%2e/admin`` is ``/admin`` upstream.
    """
    segments = [unquote(segment) for segment in url.raw_path.decode("ascii").partition("?")[0].split("/")]
    if any(segment in (".", "..") for segment in segments):
        return None
    return segments[:-1] if len(segments) > 1 and segments[-1] == "" else segments


def _inside(url: httpx.URL, base: httpx.URL) -> bool:
    """Whether ``url`` is on ``base``'s origin and under its path, segment by segment."""
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        return False
    prefix, segments = _segments(base), _segments(url)
    return prefix is not None and segments is not None and segments[: len(prefix)] == prefix


class ConnectionAuth(httpx.Auth):
    """Puts one connection's credentials on each request, and refreshes and retries once when rejected.

    ```
    async with httpx.AsyncClient(auth=bridge.auth(connection_id), base_url=base) as api:
        await api.post("/items", json={"name": "x"})
    ```

    An answer in the integration's ``rate_limit.retry_on`` to an idempotent request is sent again
    after the wait the provider asks for (``wait_from``), while the total stays within ``max_wait``;
    ``max_concurrent`` and ``pace`` hold requests of one connection (in this process) until a slot frees.

    Each request gets the integration's request headers and query parameters and the token where
    the integration's ``token`` placement says (``credential_headers_and_query``), with a valid
    token (refreshed first inside the refresh window). An answer in the integration's
    ``refresh.on_status`` (401/403 by default) is handed to ``TokenKeeper.after_rejection``: when it
    gives new credentials the request is sent once more with them, body included; a second
    rejection is returned as is. Credentials are only ever sent under the integration's base URL,
    so keep ``follow_redirects`` off (httpx's default) for a token in a custom header.

    The core is async-only: use ``httpx.AsyncClient``.
    """

    requires_request_body = True

    def __init__(self, bridge: Bridge, connection_id: str) -> None:
        self._bridge = bridge
        self.connection_id = connection_id

    def __repr__(self) -> str:
        return f"ConnectionAuth(connection_id={self.connection_id!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Refused: the refresh rules are async (database and token endpoint), so is this auth."""
        raise RuntimeError(
            "authbridge's ConnectionAuth works with httpx.AsyncClient only (AuthBridge's core is async); "
            "use `async with httpx.AsyncClient(auth=bridge.auth(connection_id)) as client`"
        )

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Inject, send; refresh and send once more on a rejection; wait and resend on a rate limit."""
        await request.aread()  # buffered, so the retry can replay it
        url, headers = str(request.url), list(request.headers.multi_items())
        keeper = self._bridge.connections.keeper
        connection, creds = await keeper.fresh(self.connection_id)
        spec = (await self._bridge.broker.get_integration(connection.integration_key)).spec
        rule, limiter = spec.rate_limit, self._bridge.limiter
        slot = limiter.slot(self.connection_id, rule) if rule is not None and limiter.limits(rule) else None
        async with slot if slot is not None else contextlib.nullcontext():
            ctx = self._bridge.context(spec, connection, creds)
            self._place(request, url, headers, ctx)
            response = yield request

            rejected = creds.access_token
            challenge = response.headers.get("www-authenticate")
            if rejected is not None:
                # Step-up: a 403 insufficient_scope makes the connection want the wider scopes (needs_reauth);
                # the 403 is the answer. Anything else returns before any read (``step_up`` checks first).
                await self._bridge.connections.step_up(self.connection_id, rejected, response.status_code, challenge)
            if (
                rejected is not None
                and plugin_for(spec.auth).refreshable(spec)
                and refresh_on_rejection(spec.refresh, response.status_code, challenge)
            ):
                retry = await keeper.after_rejection(self.connection_id, rejected, response.status_code, challenge)
                if retry is not None:
                    ctx = self._bridge.context(spec, connection, retry)
                    self._place(request, url, headers, ctx)
                    response = yield request

            limited, waited = 0, 0.0
            while (
                rule is not None
                and request.method in IDEMPOTENT
                and is_limited(rule, response.status_code, response.headers.get)
            ):
                body = await response.aread() if any(s.body is not None for s in rule.wait_from) else None
                wait = provider_wait(rule, response.headers.get, body, time.time())
                delay = retry_delay(limited + 1, waited, wait, rule.max_wait.total_seconds(), rule.max_retries)
                if delay is None:
                    return
                limited, waited = limited + 1, waited + delay
                await asyncio.sleep(delay)
                self._place(request, url, headers, ctx)
                response = yield request

    def _place(self, request: httpx.Request, url: str, headers: list[tuple[str, str]], ctx: AuthContext) -> None:
        """Set the request's URL and headers to the caller's plus the connection's credentials (and signature)."""
        target, base = httpx.URL(url), httpx.URL(base_url(ctx))
        if not _inside(target, base):
            raise UnsafeValueError(
                f"connection {self.connection_id}: refusing to send its credentials to "
                f"{target.scheme}://{target.netloc.decode('ascii')}{target.path}, "
                f"outside the integration's base URL {base}"
            )
        extra_headers, query = credential_headers_and_query(ctx)
        placed = httpx.Request(
            request.method,
            target.copy_merge_params(query) if query else target,
            headers=headers,
            content=request.content,
        )
        placed.headers.update(extra_headers)
        plugin = plugin_for(ctx.integration.auth)
        if plugin.signs(ctx.integration):
            placed = plugin.sign(ctx, placed)  # each attempt signed afresh (a timestamp, a nonce)
        request.url, request.headers = placed.url, placed.headers


class Bridge:
    """AuthBridge without the server: connections, tokens and an ``httpx.Auth``, on your database.

    ```
    async with Bridge.open("sqlite:///data/authbridge.db") as bridge:
        token = await bridge.token(connection_id)
        auth = bridge.auth(connection_id)          # for httpx.AsyncClient(auth=...)
        await bridge.connections.test(connection_id)
    ```

    ``database_url`` overrides ``settings.database_url``; ``settings`` defaults to
    ``Settings.from_env()`` (the ``AUTHBRIDGE_*`` variables: the key ring comes from there or from
    the data directory's key file, and must be the one the database was written with). Building a
    Bridge does no I/O; ``start()`` (or ``async with``) connects and migrates, ``aclose()`` closes.
    """

    def __init__(
        self, database_url: str | None = None, *, settings: Settings | None = None, clock: Clock = utcnow
    ) -> None:
        settings = settings if settings is not None else Settings.from_env()
        if database_url is not None:
            # from_env on a one-entry mapping normalizes the URL (sqlite:///, postgresql://...) as the server does.
            url = Settings.from_env({"AUTHBRIDGE_DATABASE_URL": database_url}).database_url
            settings = dataclasses.replace(settings, database_url=url)
        self.settings = settings
        self.clock = clock
        self._broker: Broker | None = None
        self._http: httpx.AsyncClient | None = None
        #: Per-connection slots (``rate_limit.max_concurrent``, ``pace``) of the requests this bridge sends.
        self.limiter = Limiter()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, database_url: str | None = None, *, settings: Settings | None = None, clock: Clock = utcnow
    ) -> AsyncIterator[Bridge]:
        """A started bridge, closed on exit: ``async with Bridge.open(url) as bridge``."""
        async with cls(database_url, settings=settings, clock=clock) as bridge:
            yield bridge

    async def start(self) -> Bridge:
        """Open the store (migrating it) and the outbound client; build the broker."""
        if self._broker is not None:
            raise RuntimeError("this Bridge is already started")
        store = await open_store(self.settings, clock=self.clock)
        self._http = http_client(self.settings)
        self._broker = Broker(store, http=self._http, policy=policy_for(self.settings), clock=self.clock)
        return self

    async def aclose(self) -> None:
        """Close the outbound client and the store."""
        broker, http = self._broker, self._http
        self._broker = self._http = None
        try:
            if http is not None:
                await http.aclose()
        finally:
            if broker is not None:
                await broker.store.close()

    async def __aenter__(self) -> Bridge:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def broker(self) -> Broker:
        """The broker: integrations, API keys, events, and ``connections``."""
        if self._broker is None:
            raise RuntimeError(
                "start the Bridge first: `async with Bridge.open(...) as bridge`, or `await bridge.start()`"
            )
        return self._broker

    @property
    def connections(self) -> Connections:
        """Connected-account operations: create, callback, token, refresh, test, delete, view."""
        return self.broker.connections

    def auth(self, connection_id: str) -> ConnectionAuth:
        """An ``httpx.Auth`` for ``httpx.AsyncClient`` that sends requests as this connection."""
        return ConnectionAuth(self, connection_id)

    async def token(self, connection_id: str) -> FreshToken:
        """A valid access token, refreshed first when it is inside the refresh window."""
        return await self.connections.token(connection_id)

    async def base_url(self, connection_id: str) -> str:
        """The connection's API base URL (the integration's ``request.base_url``, rendered)."""
        connection, creds = await self.connections.keeper.fresh(connection_id)
        spec = (await self.broker.get_integration(connection.integration_key)).spec
        return base_url(self.context(spec, connection, creds))

    def context(self, spec: Integration, connection: ConnectionRecord, creds: CredentialRecord) -> AuthContext:
        """What the placement templates of one connection may use, under this bridge's rules."""
        return self.connections.context(spec, connection.parameters, creds)

    async def paginate(
        self,
        connection_id: str,
        path: str,
        *,
        method: str = "GET",
        params: Mapping[str, typing.Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Mapping[str, typing.Any] | None = None,
        items: str | None = None,
        page_size: int | None = None,
        max_pages: int = 100,
        client: httpx.AsyncClient | None = None,
    ) -> AsyncIterator[typing.Any]:
        """Every item of a listing, page after page, as the integration's ``pagination`` says.

        ```
        async for repo in bridge.paginate(connection_id, "/user/repos", page_size=100):
            print(repo["full_name"])
        ```

        Lazy (a page is fetched when its items are needed), under the rate-limit rules (each page is
        sent with :meth:`auth`). ``client`` defaults to the bridge's own outbound client (behind the
        SSRF guard). A next-page link outside the integration's base URL is refused
        (:class:`PaginationError`), as are a page without its list of items, an error answer, a cursor
        seen before, and more pages than ``max_pages``.
        """
        connection, creds = await self.connections.keeper.fresh(connection_id)
        spec = (await self.broker.get_integration(connection.integration_key)).spec
        if spec.pagination is None:
            raise PaginationError(
                f"integration {spec.key} declares no pagination: add a `pagination` block to its spec"
            )
        base = httpx.URL(base_url(self.context(spec, connection, creds)))
        pager = Pager(
            PageRule.from_json(spec.pagination.model_dump(mode="json")),
            params=params,
            headers=headers,
            json=json,
            page_size=page_size,
            items=items,
            max_pages=max_pages,
        )
        # Started (self.broker answered above), so the bridge's own client is open.
        http = client if client is not None else typing.cast(httpx.AsyncClient, self._http)
        auth = self.auth(connection_id)
        first = httpx.URL(str(base).rstrip("/") + "/" + path.lstrip("/"))
        current = first

        async def send(request: PageRequest) -> httpx.Response:
            nonlocal current
            if request.link is None:
                url, query = first, request.params
            else:
                url, query = current.join(request.link), None
                if not _inside(url, base):
                    raise PaginationError(
                        f"refusing to follow a next-page link to {url.scheme}://{url.netloc.decode('ascii')}"
                        f"{url.path}: it is outside the integration's base URL {base}"
                    )
            current = url
            return await http.request(method, url, params=query, headers=request.headers, json=request.json, auth=auth)

        async for item in aiterate(pager, send):
            yield item
