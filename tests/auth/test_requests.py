"""Tests of token, refresh and revocation requests: grants, client authentication, verbs and bodies."""

from __future__ import annotations

import base64
import json
import re
import typing
from urllib.parse import parse_qsl, unquote_plus

import httpx
import pytest

from authbridge.auth import AuthContext, GrantType, api_request, revocation_problem, revoke_requests, token_request
from authbridge.auth.requests import _build
from authbridge.errors import ConnectionStateError, ParameterError, UnsafeValueError
from authbridge.spec import Integration

CLIENT_SECRET = "cs-Secr3t:+/zq9XKJ"
ACCESS = "at-Zx81Qw0PLk5-distinct"
REFRESH = "rt-Mn44Hh7Yy-distinct"
REDIRECT = "https://bridge.example/oauth/callback"


def make_ctx(
    auth: dict[str, typing.Any] | None = None,
    *,
    refresh: dict[str, typing.Any] | None = None,
    **ctx: typing.Any,
) -> AuthContext:
    """A connection of an OAuth 2.0 integration on server ``eu1``; ``auth`` overrides fields of the auth block."""
    block: dict[str, typing.Any] = {
        "type": "oauth2",
        "authorization_url": "https://{serverName}.acme.example/authorize",
        "token_url": "https://{serverName}.acme.example/token",
        "client_id": "client:{serverName}",
        "client_secret": CLIENT_SECRET,
        "scopes": ["read", "write"],
        **(auth or {}),
    }
    spec: dict[str, typing.Any] = {"key": "acme", "name": "Acme", "parameters": [{"name": "serverName"}], "auth": block}
    if refresh is not None:
        spec["refresh"] = refresh
    integration = Integration.model_validate(spec)
    ctx.setdefault("parameters", {"serverName": "eu1"})
    ctx.setdefault("redirect_uri", REDIRECT)
    return AuthContext(integration, **ctx)


def fields_of(request: httpx.Request) -> dict[str, str]:
    """The fields a request carries: its JSON or form body, or else its query string."""
    content_type = request.headers.get("content-type", "")
    if content_type == "application/json":
        return typing.cast("dict[str, str]", json.loads(request.content))
    if content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(request.content.decode(), keep_blank_values=True))
    assert request.content == b""
    return dict(request.url.params)


def basic_of(request: httpx.Request) -> tuple[str, str]:
    """The client id and secret of the Basic header, decoded per RFC 6749 §2.3.1."""
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(encoded).decode("ascii").partition(":")
    return unquote_plus(user), unquote_plus(password)


GRANTS: list[tuple[GrantType, dict[str, typing.Any], dict[str, str]]] = [
    (
        "authorization_code",
        {"code": "the-code", "code_verifier": "the-verifier"},
        {"code": "the-code", "redirect_uri": REDIRECT, "code_verifier": "the-verifier"},
    ),
    ("client_credentials", {}, {"scope": "read write"}),
    ("password", {}, {"username": "ann", "password": "pw-Secret", "scope": "read write"}),
    ("refresh_token", {}, {"refresh_token": REFRESH}),
]


@pytest.mark.parametrize("client_auth", ["header", "body", "both"])
@pytest.mark.parametrize(("grant", "kwargs", "expected"), GRANTS, ids=[g[0] for g in GRANTS])
def test_each_grant_with_each_client_auth(
    grant: GrantType, kwargs: dict[str, typing.Any], expected: dict[str, str], client_auth: str
) -> None:
    """Each grant carries its standard fields, and the client authenticates where client_auth says."""
    ctx = make_ctx(
        {"client_auth": client_auth}, inputs={"username": "ann", "password": "pw-Secret"}, refresh_token=REFRESH
    )
    request = token_request(ctx, grant_type=grant, **kwargs)
    assert request.method == "POST"
    assert request.url == "https://eu1.acme.example/token"
    assert request.headers["accept"] == "application/json"
    fields = fields_of(request)
    assert next(iter(fields.items())) == ("grant_type", grant)
    body_auth = {"client_id": "client:eu1", "client_secret": CLIENT_SECRET} if client_auth != "header" else {}
    assert fields == {"grant_type": grant, **expected, **body_auth}
    if client_auth == "body":
        assert "authorization" not in request.headers
    else:
        assert basic_of(request) == ("client:eu1", CLIENT_SECRET)


@pytest.mark.parametrize("client_auth", ["header", "body", "both"])
@pytest.mark.parametrize(("method", "body"), [("POST", "form"), ("POST", "json"), ("POST", "query"), ("GET", "form")])
def test_each_verb_and_body_with_each_client_auth(method: str, body: str, client_auth: str) -> None:
    """Fields and client authentication land where token_method, token_body and client_auth say."""
    ctx = make_ctx({"token_method": method, "token_body": body, "client_auth": client_auth})
    request = token_request(ctx, grant_type="authorization_code", code="the-code")
    assert request.method == method
    in_query = method == "GET" or body == "query"
    assert (request.content == b"") == in_query
    assert bool(request.url.params) == in_query
    if not in_query:
        assert request.headers["content-type"] == {"json": "application/json"}.get(
            body, "application/x-www-form-urlencoded"
        )
    body_auth = {"client_id": "client:eu1", "client_secret": CLIENT_SECRET} if client_auth != "header" else {}
    expected = {"grant_type": "authorization_code", "code": "the-code", "redirect_uri": REDIRECT, **body_auth}
    assert fields_of(request) == expected
    assert ("authorization" in request.headers) == (client_auth != "body")


def test_authorization_code_without_verifier() -> None:
    """No verifier, no code_verifier field."""
    request = token_request(make_ctx(), grant_type="authorization_code", code="c")
    assert "code_verifier" not in fields_of(request)


def test_public_client_sends_its_id_in_the_body() -> None:
    """Without a client secret there is no Basic header; client_id goes in the body."""
    request = token_request(make_ctx({"client_secret": None}), grant_type="authorization_code", code="c")
    assert "authorization" not in request.headers
    assert fields_of(request)["client_id"] == "client:eu1"
    assert "client_secret" not in fields_of(request)


def test_client_secret_from_a_secret_parameter() -> None:
    """A client secret written as {param} takes the connection's parameter value."""
    ctx = make_ctx({"client_secret": "{appSecret}"}, parameters={"serverName": "eu1", "appSecret": "from-param"})
    request = token_request(ctx, grant_type="client_credentials")
    assert basic_of(request) == ("client:eu1", "from-param")


def test_get_puts_everything_in_the_query() -> None:
    """A GET token request has no body; every field, client auth included, is in the query."""
    ctx = make_ctx(
        {"token_method": "get", "client_auth": "body", "token_url": "https://{serverName}.acme.example/t?v=2"}
    )
    request = token_request(ctx, grant_type="client_credentials")
    assert request.method == "GET"
    assert request.content == b""
    assert dict(request.url.params) == {
        "v": "2",
        "grant_type": "client_credentials",
        "scope": "read write",
        "client_id": "client:eu1",
        "client_secret": CLIENT_SECRET,
    }


def test_post_json_body() -> None:
    """token_body: json sends a JSON object."""
    request = token_request(make_ctx({"token_body": "json"}), grant_type="client_credentials")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"grant_type": "client_credentials", "scope": "read write"}


def test_post_query_body() -> None:
    """token_body: query sends a POST with the fields in the query string and an empty body."""
    request = token_request(make_ctx({"token_body": "query"}), grant_type="client_credentials")
    assert request.method == "POST"
    assert request.content == b""
    assert dict(request.url.params) == {"grant_type": "client_credentials", "scope": "read write"}


def test_token_params_are_rendered_and_cannot_replace_the_grant() -> None:
    """token_params are rendered; code, redirect_uri and grant_type stay standard, scope may be replaced."""
    params = {"audience": "api-{serverName}", "code": "forged", "grant_type": "x", "redirect_uri": "y", "scope": "all"}
    request = token_request(make_ctx({"token_params": params}), grant_type="authorization_code", code="real")
    fields = fields_of(request)
    assert fields["audience"] == "api-eu1"
    assert (fields["code"], fields["grant_type"], fields["redirect_uri"]) == ("real", "authorization_code", REDIRECT)
    assert fields["scope"] == "all"


def test_token_headers_are_rendered() -> None:
    """token_headers are rendered; a given Accept replaces the default one."""
    headers = {"X-Server": "{serverName}", "Accept": "application/vnd.acme+json"}
    request = token_request(make_ctx({"token_headers": headers}), grant_type="client_credentials")
    assert request.headers["x-server"] == "eu1"
    assert request.headers.get_list("accept") == ["application/vnd.acme+json"]


def test_explicit_authorization_header_wins() -> None:
    """An Authorization header written in token_headers is not replaced by client_auth."""
    headers = {"Authorization": "Basic {base64(client_id:client_secret)}"}
    request = token_request(make_ctx({"token_headers": headers}), grant_type="client_credentials")
    expected = base64.b64encode(f"client:eu1:{CLIENT_SECRET}".encode()).decode()
    assert request.headers.get_list("authorization") == [f"Basic {expected}"]


def test_refresh_request_override() -> None:
    """refresh.request replaces the refresh grant's request, with client authentication on top."""
    refresh = {
        "request": {
            "url": "{credentials.instance_url}/oauth/refresh",
            "method": "GET",
            "params": {"rt": "{refresh_token}", "kind": "renew"},
            "headers": {"X-Old": "{token}"},
        }
    }
    ctx = make_ctx(
        {"client_auth": "both"},
        refresh=refresh,
        credentials={"instance_url": "https://na1.example.com"},
        access_token=ACCESS,
        refresh_token=REFRESH,
    )
    request = token_request(ctx, grant_type="refresh_token")
    assert request.method == "GET"
    assert (request.url.host, request.url.path) == ("na1.example.com", "/oauth/refresh")
    assert dict(request.url.params) == {
        "rt": REFRESH,
        "kind": "renew",
        "client_id": "client:eu1",
        "client_secret": CLIENT_SECRET,
    }
    assert request.headers["x-old"] == ACCESS
    assert basic_of(request) == ("client:eu1", CLIENT_SECRET)


def test_custom_token_request_carries_only_token_params() -> None:
    """A custom token request has its token_params and headers, no grant and no client authentication."""
    integration = Integration.model_validate(
        {
            "key": "tok",
            "name": "Tok",
            "parameters": [{"name": "user"}, {"name": "apiSecret", "secret": True}],
            "auth": {
                "type": "custom_token",
                "token_url": "https://auth.example.com/session",
                "token_body": "json",
                "token_params": {"login": "{user}", "secret": "{apiSecret}"},
                "token_headers": {"X-Client": "bridge"},
            },
        }
    )
    ctx = AuthContext(integration, parameters={"user": "ann", "apiSecret": "p-Secret"})
    request = token_request(ctx, grant_type=None)
    assert json.loads(request.content) == {"login": "ann", "secret": "p-Secret"}
    assert request.headers["x-client"] == "bridge"
    assert "authorization" not in request.headers
    with pytest.raises(ValueError, match="grant_type=None"):
        token_request(ctx, grant_type="client_credentials")


def test_oauth2_needs_a_grant_type() -> None:
    """An OAuth 2.0 token request without a grant type is a ValueError."""
    with pytest.raises(ValueError, match="grant_type"):
        token_request(make_ctx(), grant_type=None)


def test_refresh_without_refresh_token() -> None:
    """A refresh of a connection that holds no refresh token asks for a new authorization."""
    with pytest.raises(ConnectionStateError, match="authorize again"):
        token_request(make_ctx(), grant_type="refresh_token")


def test_password_grant_needs_inputs() -> None:
    """The password grant names the missing inputs and never quotes the one given."""
    with pytest.raises(ParameterError, match=re.escape("inputs.password: is required by the password grant")) as caught:
        token_request(make_ctx(inputs={"username": "ann"}), grant_type="password")
    assert [item.path for item in caught.value.errors] == ["inputs.password"]


def test_unsafe_token_url_value_is_refused() -> None:
    """A parameter value that would move the token URL's host is refused."""
    with pytest.raises(UnsafeValueError, match="the value of serverName is not a valid host name part"):
        token_request(make_ctx(parameters={"serverName": "evil.example#"}), grant_type="client_credentials")


@pytest.mark.parametrize("client_auth", ["header", "body", "both"])
def test_revoke_requests_order_and_hints(client_auth: str) -> None:
    """The refresh token is revoked first, then the access token, each with its hint and client auth."""
    ctx = make_ctx(
        {"client_auth": client_auth, "revoke_url": "{credentials.instance_url}/revoke"},
        credentials={"instance_url": "https://na1.example.com"},
        access_token=ACCESS,
        refresh_token=REFRESH,
    )
    requests = revoke_requests(ctx)
    body_auth = {"client_id": "client:eu1", "client_secret": CLIENT_SECRET} if client_auth != "header" else {}
    assert [r.token_type for r in requests] == ["refresh_token", "access_token"]
    assert [fields_of(r.request) for r in requests] == [
        {"token": REFRESH, "token_type_hint": "refresh_token", **body_auth},
        {"token": ACCESS, "token_type_hint": "access_token", **body_auth},
    ]
    for _kind, request in requests:
        assert (request.method, str(request.url)) == ("POST", "https://na1.example.com/revoke")
        assert ("authorization" in request.headers) == (client_auth != "body")


def test_revoke_only_the_access_token() -> None:
    """Without a refresh token only the access token is revoked."""
    ctx = make_ctx({"revoke_url": "https://{serverName}.acme.example/revoke"}, access_token=ACCESS)
    assert [fields_of(r.request)["token_type_hint"] for r in revoke_requests(ctx)] == ["access_token"]


def test_no_revoke_requests_without_url_or_tokens() -> None:
    """No revoke_url, or no token, means nothing to send."""
    assert revoke_requests(make_ctx(access_token=ACCESS)) == []
    assert revoke_requests(make_ctx({"revoke_url": "https://{serverName}.acme.example/revoke"})) == []


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        (httpx.Response(200), None),
        (httpx.Response(200, json={"error": "ignored on success"}), None),
        (httpx.Response(400, json={"error": "unsupported_token_type"}), "answered 400 (unsupported_token_type)"),
        (httpx.Response(503, text="<h1>Service Unavailable</h1>"), "answered 503"),
        (httpx.Response(400, json={"error": "token tok_abc123 was not found"}), "answered 400"),
        (httpx.Response(401, json=["invalid_client"]), "answered 401"),
    ],
)
def test_revocation_problem(response: httpx.Response, problem: str | None) -> None:
    """A 2xx is a revocation; anything else is a problem naming the status and an RFC 7009 error code only."""
    assert revocation_problem(response) == problem


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        ("POST", "json", {"remember": True, "ttl": 3600, "ratio": 0.5, "name": "eu1"}),
        ("POST", "form", {"remember": "true", "ttl": "3600", "ratio": "0.5", "name": "eu1"}),
        ("GET", "form", {"remember": "true", "ttl": "3600", "ratio": "0.5", "name": "eu1"}),
        ("POST", "query", {"remember": "true", "ttl": "3600", "ratio": "0.5", "name": "eu1"}),
    ],
)
def test_token_params_keep_booleans_and_numbers(method: str, body: str, expected: dict[str, object]) -> None:
    """Booleans and numbers are JSON types in a JSON body, and 'true'/'3600' in a form or a query."""
    auth = {
        "type": "custom_token",
        "token_url": "https://x.example/token",
        "token_method": method,
        "token_body": body,
        "token_params": {"remember": True, "ttl": 3600, "ratio": 0.5, "name": "{serverName}"},
    }
    spec = {"key": "typed", "name": "Typed", "parameters": [{"name": "serverName"}], "auth": auth}
    ctx = AuthContext(Integration.model_validate(spec), parameters={"serverName": "eu1"})
    assert fields_of(token_request(ctx, grant_type=None)) == expected


def test_refresh_request_without_url_goes_to_the_token_url() -> None:
    """``refresh.request`` without ``url`` is sent to ``auth.token_url``, with its own params."""
    refresh = {"request": {"params": {"grant_type": "refresh_token", "refresh_token": "{refresh_token}", "n": 1}}}
    ctx = make_ctx(refresh=refresh, refresh_token=REFRESH)
    request = token_request(ctx, grant_type="refresh_token")
    assert str(request.url) == "https://eu1.acme.example/token"
    assert fields_of(request) == {"grant_type": "refresh_token", "refresh_token": REFRESH, "n": "1"}


def test_a_captured_value_must_match_its_pattern_before_any_token_request() -> None:
    """A callback capture used in token_url is checked against auth.callback.patterns first."""
    auth = {
        "token_url": "https://{credentials.shop}.shops.example/token",
        "callback": {"capture": ["shop"], "patterns": {"shop": "[a-z0-9-]+"}},
    }
    good = make_ctx(auth, credentials={"shop": "my-shop"})
    assert str(token_request(good, grant_type="authorization_code", code="c").url) == (
        "https://my-shop.shops.example/token"
    )
    for value in ("evil.example#", "evil.example/x?", "a.b"):
        bad = make_ctx(auth, credentials={"shop": value})
        with pytest.raises(UnsafeValueError, match="the callback's shop does not match"):
            token_request(bad, grant_type="authorization_code", code="c")


def test_api_request_puts_the_token_in_the_test_path_and_headers() -> None:
    """``{token}`` in test.path is percent-encoded as one segment; test headers render it; placed headers win."""
    spec = {
        "key": "t",
        "name": "T",
        "auth": {"type": "api_token"},
        "token": {"in": "header", "name": "X-Token", "template": "{token}"},
        "request": {"base_url": "https://api.example/v1"},
        "test": {"path": "/tokens/{token}", "headers": {"X-Echo": "T {token}", "X-Token": "overridden"}},
    }
    integration = Integration.model_validate(spec)
    assert integration.test is not None
    ctx = AuthContext(integration, access_token="a/b?c#d")
    request = api_request(ctx, "GET", integration.test.path, integration.test.headers)
    assert request.url.raw_path == b"/v1/tokens/a%2Fb%3Fc%23d"
    assert request.headers["X-Echo"] == "T a/b?c#d" and request.headers["X-Token"] == "a/b?c#d"


@pytest.mark.parametrize(
    ("url", "fields", "headers"),
    [
        (
            "https://id.example/token",
            {"grant_type": "client_credentials", "scope": "a b"},
            {"Accept": "application/json"},
        ),
        ("https://id.example:8443/t?x=1", {"q": "ü & = + / %"}, {"X-Api": "k", "accept": "text/plain"}),
        (
            "http://127.0.0.1:9999/token",
            {"conn": "c1"},
            {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
        ),
        ("https://id.example/token", {"a": ""}, {"Host": "other.example", "Content-Length": "3"}),
        ("https://id.example/token", {}, {"Accept": "application/json"}),
    ],
)
def test_a_form_token_request_is_the_one_httpx_builds_from_data(
    url: str, fields: dict[str, str], headers: dict[str, str]
) -> None:
    """The form body is built with its headers in place (cheaper): same body, same headers, same order, as data=."""
    built = _build("POST", url, "form", fields, httpx.Headers(headers))
    expected = httpx.Request("POST", url, data=fields, headers=httpx.Headers(headers))
    assert (built.method, built.url) == (expected.method, expected.url)
    assert built.headers.raw == expected.headers.raw
    assert built.read() == expected.read() and built.content == expected.content
    assert type(built.stream) is type(expected.stream) and built.extensions == expected.extensions
