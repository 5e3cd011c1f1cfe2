"""``ANY /proxy/{connection_id}/{path}`` through a real AuthBridge process to a test upstream on loopback."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest

from tests.proxy.conftest import Server, Upstream
from tests.proxy.upstream import free_port

API_TOKEN = "api-TOKEN-7f3a9c"


def _api_token_spec(upstream: Upstream, key: str, token: dict[str, str], *, prefix: str = "/v1") -> dict[str, object]:
    return {
        "key": key,
        "name": key,
        "auth": {"type": "api_token"},
        "token": token,
        "request": {
            "base_url": f"{upstream.url}{prefix}",
            "headers": {"X-Client": "authbridge-tests"},
            "query": {"format": "json"},
        },
    }


def _custom_spec(upstream: Upstream) -> dict[str, object]:
    return {
        "key": "logins",
        "name": "Login API",
        "auth": {
            "type": "custom_token",
            "token_url": f"{upstream.url}/login",
            "token_response": {"access_token": "token"},
        },
        "request": {"base_url": upstream.url},
    }


def _raw_get(server: Server, path: str) -> tuple[int, bytes]:
    """GET a raw path over a socket: HTTP clients would normalise the dots away before sending."""
    url = httpx.URL(server.url)
    with socket.create_connection((url.host, url.port or 80), timeout=10) as sock:
        lines = [f"GET {path} HTTP/1.1", f"Host: {url.host}", f"Authorization: Bearer {server.key}"]
        lines.append("Connection: close")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def _echo(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 200, response.text
    data = response.json()
    assert isinstance(data, dict)
    return data


def test_header_injection_with_custom_name_and_template(server: Server, upstream: Upstream) -> None:
    """The token goes in the configured header with its template; request headers and query are added."""
    server.integration(
        _api_token_spec(upstream, "hdr", {"in": "header", "name": "X-Api-Key", "template": "Token {token}"})
    )
    cid = server.connect("hdr", credentials={"token": API_TOKEN})
    echo = _echo(
        httpx.post(
            f"{server.url}/proxy/{cid}/items/a%2Fb?x=1&x=2",
            content=b"payload",
            headers={**server.headers, "X-Api-Key": "caller-value", "X-Other": "kept", "Content-Type": "text/plain"},
        )
    )
    headers = echo["headers"]
    assert isinstance(headers, dict)
    assert headers["x-api-key"] == f"Token {API_TOKEN}"  # the injected value overrides the caller's
    assert headers["x-client"] == "authbridge-tests" and headers["x-other"] == "kept"
    assert "authorization" not in headers  # the caller's AuthBridge key never reaches the upstream
    assert echo["method"] == "POST" and echo["body"] == "payload"
    assert echo["raw_path"] == "/v1/items/a%2Fb"  # the caller's encoding is kept
    assert echo["query"] == [["x", "1"], ["x", "2"], ["format", "json"]]


def test_query_injection_overrides_the_caller(server: Server, upstream: Upstream) -> None:
    """With ``in: query`` the token is a URL parameter, replacing one of the same name from the caller."""
    server.integration(_api_token_spec(upstream, "qry", {"in": "query", "name": "api_key", "template": "{token}"}))
    cid = server.connect("qry", credentials={"token": API_TOKEN})
    echo = _echo(httpx.get(f"{server.url}/proxy/{cid}/search?q=cats&api_key=mine", headers=server.headers))
    assert echo["query"] == [["q", "cats"], ["format", "json"], ["api_key", API_TOKEN]]


def test_key_in_x_authbridge_key_lets_authorization_through(server: Server, upstream: Upstream) -> None:
    """A caller using X-AuthBridge-Key keeps its own Authorization header; the key header itself is dropped."""
    server.integration(_api_token_spec(upstream, "xkey", {"in": "query", "name": "k", "template": "{token}"}))
    cid = server.connect("xkey", credentials={"token": API_TOKEN})
    echo = _echo(
        httpx.get(
            f"{server.url}/proxy/{cid}/me",
            headers={
                "X-AuthBridge-Key": server.key,
                "Authorization": "Custom caller-auth",
                "Connection": "x-hop",
                "X-Hop": "no",
                "TE": "trailers",
            },
        )
    )
    headers = echo["headers"]
    assert isinstance(headers, dict)
    assert headers["authorization"] == "Custom caller-auth"
    assert server.key not in str(echo)
    assert "x-hop" not in headers and "te" not in headers  # hop-by-hop, and those named in Connection


def test_response_headers_pass_minus_hop_by_hop(server: Server, upstream: Upstream) -> None:
    """The upstream's answer comes back with its headers, minus hop-by-hop ones."""
    server.integration(
        _api_token_spec(upstream, "resp", {"in": "header", "name": "Authorization", "template": "Bearer {token}"})
    )
    cid = server.connect("resp", credentials={"token": API_TOKEN})
    response = httpx.get(f"{server.url}/proxy/{cid}/x", headers=server.headers)
    assert response.status_code == 200
    assert response.headers["x-upstream"] == "yes" and response.headers["set-cookie"] == "upstream=1"
    assert "x-hop" not in response.headers


def test_refresh_on_401_replays_the_post_body(server: Server, upstream: Upstream) -> None:
    """A 401 triggers one refresh and one retry carrying the same POST body; a second 401 is returned as is."""
    server.integration(_custom_spec(upstream))
    cid = server.connect("logins")
    assert upstream.state.logins == 1
    upstream.state.valid_tokens.clear()  # the upstream now rejects the stored token
    response = httpx.post(f"{server.url}/proxy/{cid}/protected/things", content=b'{"n": 1}', headers=server.headers)
    echo = _echo(response)
    assert echo["body"] == '{"n": 1}' and upstream.state.logins == 2
    authorization = echo["headers"]["authorization"]  # type: ignore[index]
    assert authorization.removeprefix("Bearer ") in upstream.state.valid_tokens


def test_second_rejection_returned_as_is(server: Server, upstream: Upstream) -> None:
    """When the retried request is rejected too, that 401 reaches the caller, after exactly one refresh."""
    server.integration(_custom_spec(upstream))
    cid = server.connect("logins")
    upstream.state.statuses = [(401, {}), (401, {"X-Second": "yes"})]
    response = httpx.get(f"{server.url}/proxy/{cid}/anything", headers=server.headers)
    assert response.status_code == 401 and response.headers["x-second"] == "yes"
    assert upstream.state.logins == 2


def test_streams_fifty_mib_without_buffering(server: Server, upstream: Upstream) -> None:
    """A 50 MiB answer streams through while the server's memory grows by less than 10 MiB."""
    spec = _api_token_spec(
        upstream, "big", {"in": "header", "name": "Authorization", "template": "Bearer {token}"}, prefix=""
    )
    server.integration(spec)
    cid = server.connect("big", credentials={"token": API_TOKEN})
    _echo(httpx.get(f"{server.url}/proxy/{cid}/warm", headers=server.headers))
    before = server.rss_kib()
    peak = before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, server.rss_kib())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    received = 0
    try:
        with httpx.stream("GET", f"{server.url}/proxy/{cid}/big?mb=50", headers=server.headers) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw(65536):
                received += len(chunk)
                time.sleep(0)  # a slow-ish reader: the server must not run ahead into memory
    finally:
        stop.set()
        sampler.join()
    assert received == 50 * 1024 * 1024
    assert (peak - before) < 10 * 1024, f"RSS grew by {(peak - before) / 1024:.1f} MiB"


@pytest.mark.parametrize("path", ["..", "../admin", "a/../../b", "%2e%2e/x", "a/%2E%2E/%2e%2e/x", "/evil.example/x"])
def test_path_traversal_is_refused(server: Server, upstream: Upstream, path: str) -> None:
    """A path that would leave the base URL is refused with 400, and the upstream sees nothing."""
    server.integration(_api_token_spec(upstream, "trav", {"in": "query", "name": "k", "template": "{token}"}))
    cid = server.connect("trav", credentials={"token": API_TOKEN})
    before = upstream.state.requests
    status, body = _raw_get(server, f"/proxy/{cid}/{path}")
    assert status == 400, body
    assert b'"invalid_path"' in body
    assert upstream.state.requests == before


def test_absolute_url_in_path_is_refused(server: Server, upstream: Upstream) -> None:
    """``/proxy/{id}/https://other.example/`` is refused too."""
    server.integration(_api_token_spec(upstream, "abs", {"in": "query", "name": "k", "template": "{token}"}))
    cid = server.connect("abs", credentials={"token": API_TOKEN})
    assert _raw_get(server, f"/proxy/{cid}/https://other.example/")[0] == 400
    assert _raw_get(server, f"/proxy/{cid}/https:%2F%2Fother.example/")[0] == 400


def test_error_mapping(server: Server, upstream: Upstream) -> None:
    """Unknown connection 404, bad key 401, needs re-auth 409, unreachable 502, timeout 504: JSON naming the side."""
    unknown = httpx.get(f"{server.url}/proxy/nope/x", headers=server.headers)
    assert unknown.status_code == 404 and unknown.json()["error"]["side"] == "authbridge"
    assert httpx.get(f"{server.url}/proxy/nope/x").status_code == 401
    assert httpx.get(f"{server.url}/proxy/nope/x", headers={"Authorization": "Bearer ab_wrong"}).status_code == 401

    server.integration(_custom_spec(upstream))
    cid = server.connect("logins")
    upstream.state.login_status = 400
    assert httpx.post(f"{server.url}/connections/{cid}/refresh", headers=server.headers).status_code == 502
    reauth = httpx.get(f"{server.url}/proxy/{cid}/x", headers=server.headers)
    assert reauth.status_code == 409, reauth.text
    assert "needs" in reauth.json()["error"]["message"] and reauth.json()["error"]["side"] == "authbridge"

    closed = {
        "key": "closed",
        "name": "closed",
        "auth": {"type": "none"},
        "request": {"base_url": f"http://127.0.0.1:{free_port()}"},
    }
    server.integration(closed)
    down = server.connect("closed")
    unreachable = httpx.get(f"{server.url}/proxy/{down}/x", headers=server.headers)
    assert unreachable.status_code == 502 and unreachable.json()["error"]["side"] == "upstream"

    spec = _api_token_spec(upstream, "slow", {"in": "query", "name": "k", "template": "{token}"}, prefix="")
    server.integration(spec)
    slow = server.connect("slow", credentials={"token": API_TOKEN})
    timed_out = httpx.get(f"{server.url}/proxy/{slow}/slow?s=3", headers=server.headers, timeout=10)
    assert timed_out.status_code == 504 and timed_out.json()["error"]["side"] == "upstream"
    for response in (unknown, reauth, unreachable, timed_out):
        assert API_TOKEN not in response.text and server.key not in response.text


def test_retries_for_idempotent_methods(server: Server, upstream: Upstream) -> None:
    """X-AuthBridge-Retries retries 503/429 for GET (honouring Retry-After), never for POST."""
    server.integration(_api_token_spec(upstream, "retry", {"in": "query", "name": "k", "template": "{token}"}))
    cid = server.connect("retry", credentials={"token": API_TOKEN})
    upstream.state.statuses = [(503, {"Retry-After": "0"}), (429, {})]
    ok = httpx.get(f"{server.url}/proxy/{cid}/r", headers={**server.headers, "X-AuthBridge-Retries": "2"})
    assert ok.status_code == 200
    upstream.state.statuses = [(503, {})]
    assert httpx.get(f"{server.url}/proxy/{cid}/r", headers=server.headers).status_code == 503
    upstream.state.statuses = [(503, {})]
    post = httpx.post(f"{server.url}/proxy/{cid}/r", headers={**server.headers, "X-AuthBridge-Retries": "2"})
    assert post.status_code == 503


def test_jwt_access_token_expiry_comes_from_exp(server: Server, upstream: Upstream) -> None:
    """A token response without expires_in whose access token is a JWT: the connection expires at its ``exp``."""
    spec = {
        "key": "jwtlogin",
        "name": "JWT login",
        "auth": {
            "type": "custom_token",
            "token_url": f"{upstream.url}/login-jwt",
            "token_response": {"access_token": "token"},
        },
        "request": {"base_url": upstream.url},
    }
    server.integration(spec)
    cid = server.connect("jwtlogin")
    shown = httpx.get(f"{server.url}/connections/{cid}", headers=server.headers).json()
    token = httpx.get(f"{server.url}/connections/{cid}/token", headers=server.headers).json()
    claims = json.loads(base64.urlsafe_b64decode(token["access_token"].split(".")[1] + "=="))
    expected = datetime.fromtimestamp(claims["exp"], UTC)
    assert datetime.fromisoformat(shown["expires_at"]) == expected
    assert datetime.fromisoformat(token["expires_at"]) == expected


def test_a_dot_segment_parameter_is_refused_when_the_connection_is_created(server: Server, upstream: Upstream) -> None:
    """``/tenants/{tenant}/v1`` with tenant ``..`` once reached ``/v1`` (yarl decoded %2E%2E and dropped it).

    ``.`` and ``..`` are refused with 422 when the connection is created, as is a whole-URL value
    carrying a dot segment; three dots are a plain segment and reach the upstream as one.
    """
    spec = _api_token_spec(upstream, "tenants", {"in": "query", "name": "k", "template": "{token}"})
    spec["parameters"] = [{"name": "tenant"}]
    spec["request"] = {"base_url": f"{upstream.url}/tenants/{{tenant}}/v1"}
    server.integration(spec)
    body = {"integration": "tenants", "name": "T", "credentials": {"token": API_TOKEN}}
    for value in ("..", "."):
        response = httpx.post(
            f"{server.url}/connections", json={**body, "parameters": {"tenant": value}}, headers=server.headers
        )
        assert response.status_code == 422, response.text
        [error] = response.json()["error"]["errors"]
        assert error["path"] == "parameters.tenant" and "cannot be a URL path segment" in error["message"]
    cid = server.connect("tenants", parameters={"tenant": "..."}, credentials={"token": API_TOKEN})
    echoed = _echo(httpx.get(f"{server.url}/proxy/{cid}/x", headers=server.headers))
    assert echoed["path"] == "/tenants/.../v1/x"

    whole = {**spec, "key": "wholeurl", "parameters": [{"name": "base", "format": "url"}]}
    whole["request"] = {"base_url": "{base}/v1"}
    server.integration(whole)
    for base in (f"{upstream.url}/a/..", f"{upstream.url}/a/%2e%2E"):
        response = httpx.post(
            f"{server.url}/connections",
            json={**body, "integration": "wholeurl", "parameters": {"base": base}},
            headers=server.headers,
        )
        assert response.status_code == 422, response.text
        assert "'.' or '..' segment" in response.json()["error"]["errors"][0]["message"]
