"""The synchronous facade: each method sends one of ``_calls``' calls with ``httpx.Client``."""

from __future__ import annotations

import builtins
import contextlib
import typing
from collections.abc import Iterator, Mapping
from types import TracebackType

import httpx

from authbridge.client._calls import (
    DEFAULT_TIMEOUT,
    KEY_HEADER,
    Call,
    Connection,
    ConnectionTestResult,
    ConnectSession,
    DeletedConnection,
    ImportResult,
    Json,
    Run,
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
from authbridge.paging import Pager, PageRequest, iterate

__all__ = ["AuthBridgeClient", "Connections", "Integrations"]

T = typing.TypeVar("T")


class Integrations:
    """``client.integrations``: the integration specs, as JSON objects (client secrets masked)."""

    def __init__(self, run: Run) -> None:
        self._run = run

    def list(self) -> builtins.list[Json]:
        """Every integration's spec."""
        return self._run(integration_list())

    def get(self, key: str) -> Json:
        """One integration's spec."""
        return self._run(integration_get(key))

    def create(self, spec: Mapping[str, typing.Any]) -> Json:
        """Create from a JSON spec (409 if the key is taken; 422 lists every problem)."""
        return self._run(integration_create(spec))

    def put(self, key: str, spec: Mapping[str, typing.Any]) -> Json:
        """Create or replace; a ``client_secret`` of ``********`` keeps the stored one."""
        return self._run(integration_put(key, spec))

    def delete(self, key: str) -> None:
        """Delete an integration that has no connected accounts."""
        return self._run(integration_delete(key))

    def import_yaml(self, yaml: str | bytes) -> ImportResult:
        """Create or update every integration of a YAML text (one or more documents), all checked first."""
        return self._run(integration_import(yaml))


class Connections:
    """``client.connections``: connected accounts."""

    def __init__(self, run: Run) -> None:
        self._run = run

    def create(
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
        return self._run(connection_create(integration, name, parameters, credentials, return_to, owner))

    def get(self, connection_id: str) -> Connection:
        """One connection."""
        return self._run(connection_get(connection_id))

    def list(
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
            page, cursor = self._run(connection_page(filters, cursor))
            found += page
            if cursor is None:
                return found

    def delete(self, connection_id: str) -> DeletedConnection:
        """Revoke upstream (when the integration can), then delete."""
        return self._run(connection_delete(connection_id))

    def test(self, connection_id: str) -> ConnectionTestResult:
        """Run the integration's test request with the connection's credentials."""
        return self._run(connection_test(connection_id))

    def refresh(self, connection_id: str) -> Connection:
        """Refresh the token now."""
        return self._run(connection_refresh(connection_id))

    def update(
        self,
        connection_id: str,
        *,
        name: str | None = None,
        parameters: Mapping[str, object] | None = None,
        credentials: Mapping[str, object] | None = None,
    ) -> Connection:
        """Change a connection in place (same id): rename, new parameter values, a new API token or password."""
        return self._run(connection_update(connection_id, name=name, parameters=parameters, credentials=credentials))

    def token(self, connection_id: str) -> Token:
        """A valid access token, refreshed first when due (for code that calls the API itself)."""
        return self._run(connection_token(connection_id))

    def reconnect(self, connection_id: str, *, return_to: str | None = None) -> Connection:
        """Authorize again: a new ``authorize_url``, or a new token for the other grants."""
        return self._run(connection_reconnect(connection_id, return_to))


class ConnectSessions:
    """``client.connect_sessions``: let your end users connect their own accounts (a key with scope ``connect``)."""

    def __init__(self, run: Run) -> None:
        self._run = run

    def create(
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
        return self._run(
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

    def end(self, token: str) -> None:
        """End a session now (an open page shows that it ended)."""
        self._run(connect_session_end(token))


class AuthBridgeClient:
    """AuthBridge's HTTP API from synchronous code.

    ```
    with AuthBridgeClient("https://auth.example.com", api_key) as client:
        connection = client.connections.create("github", "alice")
        client.connections.token(connection.id).access_token
        client.request(connection.id, "POST", "/repos/o/r/issues", json={"title": "Hi"})
    ```

    ``transport`` replaces httpx's (for example ``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        base_url: str | httpx.URL,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers={KEY_HEADER: api_key}, timeout=timeout, transport=transport
        )
        self.integrations = Integrations(self._send)
        self.connections = Connections(self._send)
        self.connect_sessions = ConnectSessions(self._send)

    def _send(self, call: Call[T]) -> T:
        response = self._http.request(
            call.method, call.path, params=call.params, json=call.json, content=call.content, headers=call.headers
        )
        return checked(call, response)

    def request(self, connection_id: str, method: str, path: str, **kwargs: typing.Any) -> httpx.Response:
        """Send a request through the proxy with the connection's credentials; the upstream's answer as is.

        ``kwargs`` are httpx's (``params``, ``headers``, ``json``, ``content``...). AuthBridgeAPIError
        is raised only when AuthBridge itself refuses (unknown connection, re-authorization needed...).
        """
        response = self._http.request(method, proxy_path(connection_id, path), **kwargs)
        problem = proxy_error(response)
        if problem is not None:
            raise problem
        return response

    def paginate(
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
    ) -> Iterator[typing.Any]:
        """Every item of a listing, page after page through the proxy, as the integration's ``pagination`` says.

        ```
        for repo in client.paginate(connection.id, "/user/repos", params={"sort": "updated"}):
            print(repo["full_name"])
        ```

        Lazy: a page is fetched when its items are needed. ``items`` overrides the rule's path of the
        list in a page; ``page_size`` is capped at the rule's ``max_limit``; ``pagination`` gives the rule
        (a key without ``connections:read`` cannot read it from the connection). Next-page links are
        followed only under the integration's base URL (the proxy refuses others). The proxy's
        rate-limit rules apply to every page. Raises :class:`authbridge.errors.PaginationError` when a
        page answers an error, has no list of items, repeats a cursor, or ``max_pages`` is reached with more left.
        """
        declared = dict(pagination) if pagination is not None else self._send(connection_pagination(connection_id))
        pager = Pager(
            page_rule(connection_id, declared),
            params=params,
            headers=headers,
            json=json,
            page_size=page_size,
            items=items,
            max_pages=max_pages,
        )

        def send(request: PageRequest) -> httpx.Response:
            return self.request(connection_id, method, path, **page_send_args(request))

        yield from iterate(pager, send)

    @contextlib.contextmanager
    def stream(self, connection_id: str, method: str, path: str, **kwargs: typing.Any) -> Iterator[httpx.Response]:
        """Like :meth:`request`, with the answer's body not read yet (``response.iter_bytes()``)."""
        with self._http.stream(method, proxy_path(connection_id, path), **kwargs) as response:
            if might_be_proxy_error(response):
                response.read()
                problem = proxy_error(response)
                if problem is not None:
                    raise problem
            yield response

    def close(self) -> None:
        """Close the underlying connections."""
        self._http.close()

    def __enter__(self) -> AuthBridgeClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
