"""The SDK's calls, written once: what each API call sends and how its answer is read; results and errors.

Each call is a :class:`Call` value; the sync and async facades (``_sync.py``, ``_async.py``) only send them.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from urllib.parse import quote

import httpx

from authbridge.errors import ErrorItem, PaginationError
from authbridge.paging import PageRequest, PageRule

__all__ = [
    "DEFAULT_TIMEOUT",
    "KEY_HEADER",
    "NEXT_HEADER",
    "AsyncRun",
    "AuthBridgeAPIError",
    "Call",
    "ConnectSession",
    "Connection",
    "ConnectionTestResult",
    "DeletedConnection",
    "ImportResult",
    "Json",
    "Run",
    "Token",
    "checked",
    "connect_session_create",
    "connect_session_end",
    "connection_create",
    "connection_delete",
    "connection_filters",
    "connection_get",
    "connection_page",
    "connection_pagination",
    "connection_reconnect",
    "connection_refresh",
    "connection_update",
    "connection_test",
    "connection_token",
    "integration_create",
    "integration_delete",
    "integration_get",
    "integration_import",
    "integration_list",
    "integration_put",
    "might_be_proxy_error",
    "page_rule",
    "page_send_args",
    "proxy_error",
    "proxy_path",
]

T = typing.TypeVar("T")
Json = dict[str, typing.Any]

#: The header the SDK sends its API key in, so a proxied request may carry its own ``Authorization``.
KEY_HEADER = "X-AuthBridge-Key"
#: The header that asks the proxy to follow an upstream's next-page link (checked against the base URL there).
NEXT_HEADER = "X-AuthBridge-Next"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


# -- results and errors -----------------------------------------------------------------------------


class AuthBridgeAPIError(Exception):
    """AuthBridge answered with an error (never raised for an upstream API's own answers).

    ```
    try:
        client.connections.get("nope")
    except AuthBridgeAPIError as exc:
        exc.status, exc.code, exc.side   # 404, "not_found", "authbridge"
        exc.errors                       # [ErrorItem(path, message), ...] for 422s
    ```
    """

    def __init__(
        self, status: int, code: str, message: str, side: str = "authbridge", errors: typing.Sequence[ErrorItem] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.side = side
        self.errors: tuple[ErrorItem, ...] = tuple(errors)

    def __str__(self) -> str:
        lines = "".join(f"\n  {item}" for item in self.errors)
        return f"{self.status} {self.code}: {self.message}{lines}"

    def __repr__(self) -> str:
        return f"AuthBridgeAPIError(status={self.status}, code={self.code!r})"

    def __reduce__(self) -> tuple[type[AuthBridgeAPIError], tuple[typing.Any, ...]]:
        return type(self), (self.status, self.code, self.message, self.side, self.errors)

    @classmethod
    def from_response(cls, response: httpx.Response) -> AuthBridgeAPIError:
        """The error an answer describes; an answer not in AuthBridge's shape is reported by its status only."""
        error = _error_body(response)
        if error is None:
            reason = response.reason_phrase or "error"
            return cls(response.status_code, f"http_{response.status_code}", f"AuthBridge answered {reason}")
        items = [
            ErrorItem(str(e.get("path", "")), str(e.get("message", "")), e.get("line"))
            for e in error.get("errors") or ()
            if isinstance(e, dict)
        ]
        return cls(
            response.status_code,
            str(error.get("code", f"http_{response.status_code}")),
            str(error.get("message", "")),
            str(error.get("side", "authbridge")),
            items,
        )


def _error_body(response: httpx.Response) -> Json | None:
    """The ``error`` object of AuthBridge's error shape, if the (read) answer has one."""
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("side"), str):
        return error
    return None


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclasses.dataclass(frozen=True)
class Connection:
    """A connected account as the API shows it: secret parameters masked, never a token."""

    id: str
    integration: str
    name: str
    status: str
    parameters: dict[str, str]
    scopes: list[str] | None
    expires_at: datetime | None
    last_refreshed_at: datetime | None
    last_error: str | None
    warning: str | None
    created_at: datetime | None
    updated_at: datetime | None
    #: Where the user must go to authorize (after ``create`` or ``reconnect`` of an authorization-code one).
    authorize_url: str | None = None
    #: Whose account it is: your end user (``id``, ``email``, ``display_name``) and their organization.
    end_user: dict[str, str] | None = None
    organization: dict[str, str] | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Scopes the server asked for beyond the granted ones (``insufficient_scope``): the next authorization's.
    wanted_scopes: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_json(cls, data: Json) -> Connection:
        """Build from the API's JSON (unknown fields are ignored, so newer servers work)."""
        return cls(
            id=data["id"],
            integration=data["integration"],
            name=data["name"],
            status=data["status"],
            parameters=dict(data.get("parameters") or {}),
            scopes=data.get("scopes"),
            expires_at=_time(data.get("expires_at")),
            last_refreshed_at=_time(data.get("last_refreshed_at")),
            last_error=data.get("last_error"),
            warning=data.get("warning"),
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
            authorize_url=data.get("authorize_url"),
            end_user=data.get("end_user"),
            organization=data.get("organization"),
            tags=dict(data.get("tags") or {}),
            wanted_scopes=list(data.get("wanted_scopes") or []),
        )


@dataclasses.dataclass(frozen=True)
class ConnectSession:
    """A connect session: hand ``connect_url`` to your end user's browser (the token is in it; ``repr`` hides both)."""

    id: str
    token: str = dataclasses.field(repr=False)
    connect_url: str = dataclasses.field(repr=False)
    expires_at: datetime | None = None


@dataclasses.dataclass(frozen=True)
class Token:
    """A valid access token (its ``repr`` hides it)."""

    access_token: str = dataclasses.field(repr=False)
    token_type: str
    expires_at: datetime | None


@dataclasses.dataclass(frozen=True)
class ConnectionTestResult:
    """The outcome of the integration's test request."""

    ok: bool
    status: int | None
    detail: str


@dataclasses.dataclass(frozen=True)
class DeletedConnection:
    """A deleted connection: whether revoking upstream worked, and why not.

    ``revocations`` maps each token sent for revocation (``refresh_token``, ``access_token``) to its
    error, None when that token was revoked: each is revoked on its own.
    """

    revoked: bool
    revoke_error: str | None
    revocations: dict[str, str | None] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ImportResult:
    """The keys of the integrations an import created and updated."""

    created: list[str]
    updated: list[str]


# -- the calls, written once ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Call(typing.Generic[T]):
    """One API call: what to send, and how to read a successful answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    # What is sent may hold credentials (a connection's password, an API token, a client secret).
    params: Mapping[str, str | list[str]] | None = dataclasses.field(default=None, repr=False)
    json: typing.Any = dataclasses.field(default=None, repr=False)
    content: bytes | None = dataclasses.field(default=None, repr=False)
    headers: Mapping[str, str] | None = dataclasses.field(default=None, repr=False)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _none(_response: httpx.Response) -> None:
    return None


def _json(response: httpx.Response) -> Json:
    data: Json = response.json()
    return data


def _items(response: httpx.Response) -> list[Json]:
    return list(response.json()["items"])


def _connection(response: httpx.Response) -> Connection:
    return Connection.from_json(response.json())


def _token(response: httpx.Response) -> Token:
    data = response.json()
    return Token(data["access_token"], data.get("token_type") or "Bearer", _time(data.get("expires_at")))


def _test_result(response: httpx.Response) -> ConnectionTestResult:
    data = response.json()
    return ConnectionTestResult(bool(data["ok"]), data.get("status"), str(data.get("detail", "")))


def _deleted(response: httpx.Response) -> DeletedConnection:
    data = response.json()
    outcomes = data.get("revocations") or []
    return DeletedConnection(
        bool(data.get("revoked")),
        data.get("revoke_error"),
        {str(o["token"]): (None if o.get("revoked") else str(o.get("error"))) for o in outcomes},
    )


def _imported(response: httpx.Response) -> ImportResult:
    data = response.json()
    return ImportResult(list(data.get("created", [])), list(data.get("updated", [])))


def integration_list() -> Call[list[Json]]:
    return Call("GET", "/integrations", _items)


def integration_get(key: str) -> Call[Json]:
    return Call("GET", f"/integrations/{_segment(key)}", _json)


def integration_create(spec: Mapping[str, typing.Any]) -> Call[Json]:
    return Call("POST", "/integrations", _json, json=dict(spec))


def integration_put(key: str, spec: Mapping[str, typing.Any]) -> Call[Json]:
    return Call("PUT", f"/integrations/{_segment(key)}", _json, json=dict(spec))


def integration_delete(key: str) -> Call[None]:
    return Call("DELETE", f"/integrations/{_segment(key)}", _none)


def integration_import(yaml: str | bytes) -> Call[ImportResult]:
    content = yaml.encode("utf-8") if isinstance(yaml, str) else yaml
    return Call(
        "POST", "/integrations:import", _imported, content=content, headers={"Content-Type": "application/yaml"}
    )


def connection_create(
    integration: str,
    name: str,
    parameters: Mapping[str, typing.Any] | None,
    credentials: Mapping[str, typing.Any] | None,
    return_to: str | None,
    owner: Mapping[str, typing.Any] | None = None,
) -> Call[Connection]:
    body: Json = {"integration": integration, "name": name}
    body.update({k: v for k, v in (owner or {}).items() if v})
    if parameters:
        body["parameters"] = dict(parameters)
    if credentials:
        body["credentials"] = dict(credentials)
    if return_to is not None:
        body["return_to"] = return_to
    return Call("POST", "/connections", _connection, json=body)


def _connection_path(connection_id: str, action: str = "") -> str:
    return f"/connections/{_segment(connection_id)}" + (f"/{action}" if action else "")


def connection_get(connection_id: str) -> Call[Connection]:
    return Call("GET", _connection_path(connection_id), _connection)


def _pagination(response: httpx.Response) -> Json | None:
    data = response.json().get("pagination")
    return data if isinstance(data, dict) else None


def connection_pagination(connection_id: str) -> Call[Json | None]:
    """The paging rule of the connection's integration (``pagination`` of ``GET /connections/{id}``)."""
    return Call("GET", _connection_path(connection_id), _pagination)


def page_rule(connection_id: str, declared: Json | None) -> PageRule:
    """The rule ``paginate`` follows; PaginationError when the integration declares none."""
    if declared is None:
        raise PaginationError(
            f"the integration of connection {connection_id} declares no pagination: add a `pagination` "
            "block to its spec, or pass paginate(pagination={...})"
        )
    return PageRule.from_json(declared)


def page_send_args(request: PageRequest) -> dict[str, typing.Any]:
    """The keyword arguments of ``request(...)`` for one page (a next link rides in ``X-AuthBridge-Next``)."""
    headers = dict(request.headers)
    if request.link is not None:
        headers[NEXT_HEADER] = request.link
        return {"headers": headers, "json": request.json}
    return {"params": request.params, "headers": headers, "json": request.json}


def _page(response: httpx.Response) -> tuple[list[Connection], str | None]:
    data = response.json()
    return [Connection.from_json(item) for item in data["items"]], data.get("next_cursor")


def connection_filters(
    integration: str | None,
    *,
    status: str | None = None,
    end_user_id: str | None = None,
    organization_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, str | list[str]]:
    """The query of ``GET /connections`` that ``connections.list(...)`` filters by (unset filters left out)."""
    filters = {
        "integration": integration,
        "status": status,
        "end_user_id": end_user_id,
        "organization_id": organization_id,
    }
    params: dict[str, str | list[str]] = {k: v for k, v in filters.items() if v}
    if tags:
        params["tag"] = [f"{k}:{v}" for k, v in tags.items()]
    return params


def connection_page(
    filters: Mapping[str, str | list[str]], cursor: str | None, limit: int = 1000
) -> Call[tuple[list[Connection], str | None]]:
    """One page of ``GET /connections`` (the facades follow ``next_cursor`` to the end)."""
    params = dict(filters)
    if cursor:
        params["cursor"] = cursor
    params["limit"] = str(limit)
    return Call("GET", "/connections", _page, params=params)


def _session(response: httpx.Response) -> ConnectSession:
    data = response.json()
    return ConnectSession(data["id"], data["token"], data["connect_url"], _time(data.get("expires_at")))


def connect_session_create(
    end_user: Mapping[str, str],
    *,
    allowed_integrations: typing.Sequence[str] | None = None,
    reconnect: str | None = None,
    organization: Mapping[str, str] | None = None,
    parameters: Mapping[str, Mapping[str, typing.Any]] | None = None,
    tags: Mapping[str, str] | None = None,
    return_to: str | None = None,
    ttl: str | None = None,
) -> Call[ConnectSession]:
    body: Json = {
        "end_user": dict(end_user),
        "allowed_integrations": list(allowed_integrations) if allowed_integrations is not None else None,
        "reconnect": reconnect,
        "organization": dict(organization) if organization else None,
        "parameters": {k: dict(v) for k, v in parameters.items()} if parameters else None,
        "tags": dict(tags) if tags else None,
        "return_to": return_to,
        "ttl": ttl,
    }
    return Call("POST", "/connect/sessions", _session, json={k: v for k, v in body.items() if v is not None})


def connect_session_end(token: str) -> Call[None]:
    return Call("DELETE", f"/connect/sessions/{_segment(token)}", _none)


def connection_delete(connection_id: str) -> Call[DeletedConnection]:
    return Call("DELETE", _connection_path(connection_id), _deleted)


def connection_test(connection_id: str) -> Call[ConnectionTestResult]:
    return Call("POST", _connection_path(connection_id, "test"), _test_result)


def connection_refresh(connection_id: str) -> Call[Connection]:
    return Call("POST", _connection_path(connection_id, "refresh"), _connection)


def connection_update(
    connection_id: str,
    *,
    name: str | None = None,
    parameters: Mapping[str, object] | None = None,
    credentials: Mapping[str, object] | None = None,
) -> Call[Connection]:
    body = {
        k: v for k, v in (("name", name), ("parameters", parameters), ("credentials", credentials)) if v is not None
    }
    return Call("PATCH", _connection_path(connection_id), _connection, json=body)


def connection_token(connection_id: str) -> Call[Token]:
    return Call("GET", _connection_path(connection_id, "token"), _token)


def connection_reconnect(connection_id: str, return_to: str | None) -> Call[Connection]:
    body = {"return_to": return_to} if return_to is not None else {}
    return Call("POST", _connection_path(connection_id, "reconnect"), _connection, json=body)


def checked(call: Call[T], response: httpx.Response) -> T:
    """The parsed answer, or AuthBridgeAPIError for a non-2xx one."""
    if not response.is_success:
        raise AuthBridgeAPIError.from_response(response)
    return call.parse(response)


def proxy_path(connection_id: str, path: str) -> str:
    """``/proxy/{id}/{path}``; dot segments are refused (httpx would resolve them out of the proxy route)."""
    clean = path.lstrip("/")
    if any(part in {".", ".."} for part in clean.split("?", 1)[0].split("/")):
        raise ValueError(f"the path {path!r} has '.' or '..' segments; give the path inside the API's base URL")
    return f"/proxy/{_segment(connection_id)}/{clean}"


def proxy_error(response: httpx.Response) -> AuthBridgeAPIError | None:
    """AuthBridge's own refusal of a proxied request (``side: authbridge``); None for the upstream's answers."""
    if response.status_code < 400:
        return None
    error = _error_body(response)
    if error is None or error.get("side") != "authbridge":
        return None
    return AuthBridgeAPIError.from_response(response)


def might_be_proxy_error(response: httpx.Response) -> bool:
    return response.status_code >= 400 and "json" in response.headers.get("content-type", "")


class Run(typing.Protocol):
    """Sends a call and returns its parsed answer."""

    def __call__(self, call: Call[T], /) -> T: ...


class AsyncRun(typing.Protocol):
    """Sends a call; awaitable for its parsed answer."""

    def __call__(self, call: Call[T], /) -> Awaitable[T]: ...
