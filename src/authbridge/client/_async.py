"""The asynchronous facade: each method sends one of ``_calls``' calls with ``httpx.AsyncClient``."""

from __future__ import annotations

import builtins
import contextlib
import typing
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

import httpx

from authbridge.client._calls import (
    DEFAULT_TIMEOUT,
    KEY_HEADER,
    AsyncRun,
    Call,
    Connection,
    ConnectionTestResult,
    ConnectSession,
    DeletedConnection,
    ImportResult,
    Json,
    Token,
    checked,
    connect_session_create,
    connect_session_end,
    connection_create,
    connection_delete,
    connection_filters,
    connection_get,
    connection_page,
    connection_pagination,
    connection_reconnect,
    connection_refresh,
    connection_test,
    connection_token,
    connection_update,
    integration_create,
    integration_delete,
    integration_get,
    integration_import,
    integration_list,
    integration_put,
    might_be_proxy_error,
    page_rule,
    page_send_args,
    proxy_error,
    proxy_path,
)
from authbridge.paging import Pager, PageRequest, aiterate

__all__ = ["AsyncAuthBridgeClient", "AsyncConnections", "AsyncIntegrations"]

T = typing.TypeVar("T")


class AsyncIntegrations:
    """``client.integrations`` of the async client: the integration specs, as JSON objects."""

    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def list(self) -> builtins.list[Json]:
        """Every integration's spec."""
        return await self._run(integration_list())

    async def get(self, key: str) -> Json:
        """One integration's spec."""
        return await self._run(integration_get(key))

    async def create(self, spec: Mapping[str, typing.Any]) -> Json:
        """Create from a JSON spec (409 if the key is taken; 422 lists every problem)."""
        return await self._run(integration_create(spec))

    async def put(self, key: str, spec: Mapping[str, typing.Any]) -> Json:
        """Create or replace; a ``client_secret`` of ``********`` keeps the stored one."""
        return await self._run(integration_put(key, spec))

    async def delete(self, key: str) -> None:
        """Delete an integration that has no connected accounts."""
        return await self._run(integration_delete(key))

    async def import_yaml(self, yaml: str | bytes) -> ImportResult:
        """Create or update every integration of a YAML text (one or more documents), all checked first."""
        return await self._run(integration_import(yaml))


class AsyncConnections:
    """``client.connections`` of the async client: connected accounts."""

    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def create(
        self,
        integration: str,
        name: str,
        *,
        parameters: Mapping[str, typing.Any] | None = None,
        credentials: Mapping[str, typing.Any] | None = None,
        return_to: str | None = None,
        end_user: Mapping[str, str] | None = None,
        organization: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Connection:
        """A new connection; ``authorize_url`` is set when the user must authorize in a browser.

        ``end_user`` (``{"id", "email", "display_name"}``), ``organization`` and ``tags`` say whose it is.
        """
        owner = {"end_user": end_user, "organization": organization, "tags": tags}
        return await self._run(connection_create(integration, name, parameters, credentials, return_to, owner))

    async def get(self, connection_id: str) -> Connection:
        """One connection."""
        return await self._run(connection_get(connection_id))

    async def list(
        self,
        integration: str | None = None,
        *,
        status: str | None = None,
        end_user_id: str | None = None,
        organization_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> builtins.list[Connection]:
        """Every connection matching the filters (all of them, following the API's pages)."""
        filters = connection_filters(
            integration, status=status, end_user_id=end_user_id, organization_id=organization_id, tags=tags
        )
        found: builtins.list[Connection] = []
        cursor: str | None = None
        while True:
            page, cursor = await self._run(connection_page(filters, cursor))
            found += page
            if cursor is None:
                return found

    async def delete(self, connection_id: str) -> DeletedConnection:
        """Revoke upstream (when the integration can), then delete."""
        return await self._run(connection_delete(connection_id))

    async def test(self, connection_id: str) -> ConnectionTestResult:
        """Run the integration's test request with the connection's credentials."""
        return await self._run(connection_test(connection_id))

    async def refresh(self, connection_id: str) -> Connection:
        """Refresh the token now."""
        return await self._run(connection_refresh(connection_id))

    async def update(
        self,
        connection_id: str,
        *,
        name: str | None = None,
        parameters: Mapping[str, object] | None = None,
        credentials: Mapping[str, object] | None = None,
    ) -> Connection:
        """Change a connection in place (same id): rename, new parameter values, a new API token or password."""
        return await self._run(
            connection_update(connection_id, name=name, parameters=parameters, credentials=credentials)
        )

    async def token(self, connection_id: str) -> Token:
        """A valid access token, refreshed first when due (for code that calls the API itself)."""
        return await self._run(connection_token(connection_id))

    async def reconnect(self, connection_id: str, *, return_to: str | None = None) -> Connection:
        """Authorize again: a new ``authorize_url``, or a new token for the other grants."""
        return await self._run(connection_reconnect(connection_id, return_to))


class AsyncConnectSessions:
    """``client.connect_sessions``: let your end users connect their own accounts (a key with scope ``connect``)."""

    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def create(
        self,
        end_user: Mapping[str, str],
        *,
        allowed_integrations: typing.Sequence[str] | None = None,
        reconnect: str | None = None,
        organization: Mapping[str, str] | None = None,
        parameters: Mapping[str, Mapping[str, typing.Any]] | None = None,
        tags: Mapping[str, str] | None = None,
        return_to: str | None = None,
        ttl: str | None = None,
    ) -> ConnectSession:
        """A session for one end user: give ``connect_url`` to their browser (a link, or ``connect.js``)."""
        return await self._run(
            connect_session_create(
                end_user,
                allowed_integrations=allowed_integrations,
                reconnect=reconnect,
                organization=organization,
                parameters=parameters,
                tags=tags,
                return_to=return_to,
                ttl=ttl,
            )
        )

    async def end(self, token: str) -> None:
        """End a session now (an open page shows that it ended)."""
        await self._run(connect_session_end(token))


class AsyncAuthBridgeClient:
    """AuthBridge's HTTP API from asynchronous code.

    ```
    async with AsyncAuthBridgeClient("https://auth.example.com", api_key) as client:
        connection = await client.connections.create("github", "alice")
        response = await client.request(connection.id, "GET", "/user")
    ```

    ``transport`` replaces httpx's (``httpx.ASGITransport(app)`` talks to an app in the same process).
    """

    def __init__(
        self,
        base_url: str | httpx.URL,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers={KEY_HEADER: api_key}, timeout=timeout, transport=transport
        )
        self.integrations = AsyncIntegrations(self._send)
        self.connections = AsyncConnections(self._send)
        self.connect_sessions = AsyncConnectSessions(self._send)

    async def _send(self, call: Call[T]) -> T:
        response = await self._http.request(
            call.method, call.path, params=call.params, json=call.json, content=call.content, headers=call.headers
        )
        return checked(call, response)

    async def request(self, connection_id: str, method: str, path: str, **kwargs: typing.Any) -> httpx.Response:
        """Send a request through the proxy with the connection's credentials; the upstream's answer as is.

        ``kwargs`` are httpx's (``params``, ``headers``, ``json``, ``content``...). AuthBridgeAPIError
        is raised only when AuthBridge itself refuses (unknown connection, re-authorization needed...).
        """
        response = await self._http.request(method, proxy_path(connection_id, path), **kwargs)
        problem = proxy_error(response)
        if problem is not None:
            raise problem
        return response

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
        pagination: Mapping[str, typing.Any] | None = None,
    ) -> AsyncIterator[typing.Any]:
        """Every item of a listing, page after page through the proxy, as the integration's ``pagination`` says.

        ```
        async for repo in client.paginate(connection.id, "/user/repos", params={"sort": "updated"}):
            print(repo["full_name"])
        ```

        Lazy: a page is fetched when its items are needed. ``items`` overrides the rule's path of the
        list in a page; ``page_size`` is capped at the rule's ``max_limit``; ``pagination`` gives the rule
        (a key without ``connections:read`` cannot read it from the connection). Next-page links are
        followed only under the integration's base URL (the proxy refuses others). The proxy's
        rate-limit rules apply to every page. Raises :class:`authbridge.errors.PaginationError` when a
        page answers an error, has no list of items, repeats a cursor, or ``max_pages`` is reached with more left.
        """
        declared = (
            dict(pagination) if pagination is not None else await self._send(connection_pagination(connection_id))
        )
        pager = Pager(
            page_rule(connection_id, declared),
            params=params,
            headers=headers,
            json=json,
            page_size=page_size,
            items=items,
            max_pages=max_pages,
        )

        async def send(request: PageRequest) -> httpx.Response:
            return await self.request(connection_id, method, path, **page_send_args(request))

        async for item in aiterate(pager, send):
            yield item

    @contextlib.asynccontextmanager
    async def stream(
        self, connection_id: str, method: str, path: str, **kwargs: typing.Any
    ) -> AsyncIterator[httpx.Response]:
        """Like :meth:`request`, with the answer's body not read yet (``response.aiter_bytes()``)."""
        async with self._http.stream(method, proxy_path(connection_id, path), **kwargs) as response:
            if might_be_proxy_error(response):
                await response.aread()
                problem = proxy_error(response)
                if problem is not None:
                    raise problem
            yield response

    async def aclose(self) -> None:
        """Close the underlying connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncAuthBridgeClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
