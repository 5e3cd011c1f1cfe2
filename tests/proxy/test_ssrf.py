"""The proxy's own SSRF guard, through a real ``authbridge run`` with private networks refused (the default).

Every other proxy test runs with AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS=true, so a guard that let everything
through would pass them. Here the recording upstream listens on 127.0.0.1 and must see nothing: the proxy
refuses before it connects. Non-loopback private addresses are never reachable from the tests and are
never sent any traffic either: the refusal comes before a connection is opened.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.proxy.conftest import Server, Upstream, create_key, run_authbridge, server_env

#: Hosts that may be called over plain http, so that the base URLs below are accepted as specs and the
#: refusal seen is the network guard's, not the https rule's.
LOOPBACK_FORMS = [
    "127.0.0.1",
    "[::1]",
    "0x7f000001",  # hexadecimal IPv4: getaddrinfo reads it as 127.0.0.1
    "2130706433",  # 127.0.0.1 as one decimal number
    "127.1",  # the short form of 127.0.0.1
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
    "localhost",  # a name that resolves to loopback on every machine
]
PRIVATE_FORMS = ["10.0.0.1", "192.168.1.1", "169.254.169.254", "[fd00::1]", "[::ffff:10.0.0.1]"]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``authbridge run`` with private networks refused, plain http allowed for the test hosts."""
    hosts = ",".join(h.strip("[]") for h in LOOPBACK_FORMS + PRIVATE_FORMS)
    env = server_env(
        AUTHBRIDGE_DATA_DIR=str(tmp_path_factory.mktemp("guarded") / "data"),
        AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS="false",
        AUTHBRIDGE_ALLOW_HTTP_HOSTS=hosts,
    )
    with run_authbridge(env, create_key(env, "ssrf-tests")) as started:
        yield started


def _connect_to(server: Server, key: str, base_url: str) -> str:
    server.integration({"key": key, "name": key, "auth": {"type": "none"}, "request": {"base_url": base_url}})
    return server.connect(key)


def _assert_refused(response: httpx.Response, host: str) -> None:
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "outbound_blocked"
    assert "refusing to connect" in error["message"] and "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS" in error["message"]
    assert host.strip("[]") in error["message"]


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_loopback_in_every_form_is_refused(guarded: Server, upstream: Upstream, host: str) -> None:
    """A base URL on the recording upstream's port, written any way that means 127.0.0.1: refused, nothing sent."""
    port = httpx.URL(upstream.url).port
    key = "loop" + "".join(c for c in host if c.isalnum())
    cid = _connect_to(guarded, key, f"http://{host}:{port}")
    for method in ("GET", "POST"):
        response = httpx.request(method, f"{guarded.url}/proxy/{cid}/anything", content=b"x", headers=guarded.headers)
        _assert_refused(response, "127.0.0.1" if host == "localhost" else host)
    assert upstream.state.requests == 0, upstream.state.paths


@pytest.mark.parametrize("host", PRIVATE_FORMS)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_private_and_link_local_addresses_are_refused(guarded: Server, scheme: str, host: str) -> None:
    """Private ranges and the cloud metadata address are refused before any connection is tried."""
    key = f"priv{scheme}" + "".join(c for c in host if c.isalnum())
    cid = _connect_to(guarded, key, f"{scheme}://{host}")
    response = httpx.get(f"{guarded.url}/proxy/{cid}/latest/meta-data/", headers=guarded.headers)
    _assert_refused(response, host)


def test_the_refusal_leaks_no_secret(guarded: Server, upstream: Upstream) -> None:
    """A refused call's answer and the server's log carry neither the stored token nor the caller's key."""
    port = httpx.URL(upstream.url).port
    token = "tok-SSRF-secret-51c0"
    spec = {
        "key": "looptoken",
        "name": "looptoken",
        "auth": {"type": "api_token"},
        "token": {"in": "header", "name": "Authorization", "template": "Bearer {token}"},
        "request": {"base_url": f"http://127.0.0.1:{port}"},
    }
    guarded.integration(spec)
    cid = guarded.connect("looptoken", credentials={"token": token})
    response = httpx.get(f"{guarded.url}/proxy/{cid}/x", headers=guarded.headers)
    _assert_refused(response, "127.0.0.1")
    assert token not in response.text and guarded.key not in response.text
    assert token not in guarded.log_text() and guarded.key not in guarded.log_text()
    assert upstream.state.requests == 0


def test_a_redirect_inward_is_not_followed(server: Server, upstream: Upstream) -> None:
    """An upstream's redirect reaches the caller as it is: the proxy never follows it, so it cannot be led inward.

    (Private networks are allowed on this server, so that an upstream on loopback can answer at all; were the
    redirect followed, the recording upstream would see the second request.)
    """
    server.integration(
        {"key": "redir", "name": "redir", "auth": {"type": "none"}, "request": {"base_url": upstream.url}}
    )
    cid = server.connect("redir")
    inward = f"{upstream.url}/internal/admin"
    response = httpx.get(f"{server.url}/proxy/{cid}/redirect", params={"to": inward}, headers=server.headers)
    assert response.status_code == 302
    assert response.headers["location"] == inward
    assert upstream.state.paths == ["/redirect"]


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "localhost"])
def test_a_host_from_a_connection_parameter_is_guarded_too(guarded: Server, upstream: Upstream, host: str) -> None:
    """A base URL built from a user-supplied parameter (``http://{host}:PORT``) cannot be pointed inward either:
    the account is created (the value is a valid host name part), and every call through it is refused."""
    port = httpx.URL(upstream.url).port
    key = "param" + "".join(c for c in host if c.isalnum())
    guarded.integration(
        {
            "key": key,
            "name": key,
            "parameters": [{"name": "host", "required": True}],
            "auth": {"type": "none"},
            "request": {"base_url": f"http://{{host}}:{port}"},
        }
    )
    created = httpx.post(
        f"{guarded.url}/connections",
        json={"integration": key, "name": "T", "parameters": {"host": host}},
        headers=guarded.headers,
    )
    assert created.status_code == 201, created.text  # a host name part is a valid parameter value...
    response = httpx.get(f"{guarded.url}/proxy/{created.json()['id']}/x", headers=guarded.headers)
    _assert_refused(response, "127.0.0.1" if host == "localhost" else host)  # ...the guard refuses the call
    assert upstream.state.requests == 0, upstream.state.paths
