"""``AUTHBRIDGE_ADMIN_LISTEN`` / ``--admin-listen``: public pages on one address, the admin surface on another.

A real ``authbridge run`` process; every route is asked on both listeners. ``app.surface_of`` is the rule.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authbridge.app import ADMIN, BOTH, PUBLIC, surface_of
from tests.servers.authbridge import Running, running_authbridge


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Split:
    def __init__(self, public: Running, admin_url: str) -> None:
        self.public = public
        self.admin = admin_url


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Split]:
    """AuthBridge with its admin surface on a second port (metrics open there: no token set)."""
    admin_port = _free_port()
    tmp = tmp_path_factory.mktemp("listeners")
    with running_authbridge(tmp, AUTHBRIDGE_ADMIN_LISTEN=f"127.0.0.1:{admin_port}") as running:
        yield Split(running, f"http://127.0.0.1:{admin_port}")


def _refused(response: httpx.Response) -> bool:
    """The listener's refusal: 404 in the API's JSON error shape."""
    is_json = response.headers.get("content-type", "").startswith("application/json")
    return response.status_code == 404 and is_json and response.json()["error"]["code"] == "not_found"


def _get(base: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(f"{base}{path}", follow_redirects=False, timeout=10, **kwargs)  # type: ignore[arg-type]


def test_each_route_answers_on_its_listener_only(split: Split) -> None:
    """Admin routes are 404 on the public listener, public pages 404 on the admin one; probes answer on both."""
    public, admin, headers = split.public.url, split.admin, split.public.headers
    created = httpx.post(
        f"{admin}/connect/sessions", json={"end_user": {"id": "u1"}, "allowed_integrations": ["x"]}, headers=headers
    )
    assert created.status_code in (201, 422), created.text  # the integration need not exist for the routing
    assert httpx.post(f"{public}/connect/sessions", json={}, headers=headers).status_code == 404

    admin_only = ["/integrations", "/connections", "/events", "/catalog", "/openapi.json", "/docs", "/metrics"]
    admin_only += ["/console/", "/console/sign-in", "/", f"/proxy/{'a' * 32}/x"]
    for path in admin_only:
        on_public = _get(public, path, headers=headers)
        assert _refused(on_public), path
        assert "x-request-id" in on_public.headers
        assert _get(admin, path, headers=headers).status_code != 404 or path.startswith("/proxy/"), path
    assert _get(admin, f"/proxy/{'a' * 32}/x", headers=headers).json()["error"]["code"] == "not_found"
    assert _get(admin, "/integrations", headers=headers).status_code == 200

    public_only = ["/connect.js", "/oauth/callback?state=nope&code=x", "/connect/not-a-token", "/connect/done"]
    for path in public_only:
        # The connect pages answer an unknown session with a 404 page of their own (HTML, not the JSON refusal).
        assert not _refused(_get(public, path)), path
        assert _refused(_get(admin, path)), path
    assert _get(public, "/connect.js").headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert _get(public, "/oauth/callback?state=nope&code=x").status_code == 400

    for path in ("/health", "/ready"):
        assert _get(public, path).status_code == 200
        assert _get(admin, path).status_code == 200


def test_metrics_are_open_on_the_admin_listener(split: Split) -> None:
    """Without a metrics token, /metrics answers on the admin listener to anyone who can reach it."""
    response = _get(split.admin, "/metrics")
    assert response.status_code == 200
    assert "authbridge_connections" in response.text


def test_hostile_paths_do_not_cross_listeners(split: Split) -> None:
    """Dot segments, encoded slashes and doubled slashes do not reach an admin route through the public listener."""
    public, headers = split.public.url, split.public.headers
    for path in ("/oauth/../integrations", "/connect/../integrations", "/oauth/%2e%2e/integrations", "//integrations"):
        answer = _raw(public, path, headers["Authorization"])
        assert answer != 200, path


def _raw(base: str, path: str, authorization: str) -> int:
    url = httpx.URL(base)
    with socket.create_connection((url.host, url.port or 80), timeout=10) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_surface_rule() -> None:
    """The routing rule itself: /connect/sessions is the API's (admin), the rest of /connect/ is public."""
    assert surface_of("/connect/sessions") == ADMIN
    assert surface_of("/connect/sessions/abc") == ADMIN
    assert surface_of("/connect/abc") == PUBLIC
    assert surface_of("/connect.js") == PUBLIC
    assert surface_of("/oauth/callback") == PUBLIC
    assert surface_of("/.well-known/oauth-client") == PUBLIC
    assert surface_of("/health") == BOTH
    assert surface_of("/proxy/x/y") == ADMIN
    assert surface_of("/metrics") == ADMIN


def test_the_same_port_twice_is_refused(tmp_path: Path) -> None:
    """An admin listener on the public port fails at start with a clear message (not a bind error later)."""
    port = _free_port()
    env = {**os.environ, "AUTHBRIDGE_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "authbridge", "run", "--port", str(port), "--admin-listen", f"127.0.0.1:{port}"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert b"admin listener's port must differ" in done.stderr


@pytest.mark.parametrize("value", ["9000", "host:", ":9000", "127.0.0.1:99999", "a b:1", "127.0.0.1:x"])
def test_a_bad_admin_listen_value_names_the_variable(tmp_path: Path, value: str) -> None:
    """A malformed AUTHBRIDGE_ADMIN_LISTEN fails with the variable's name and the expected form."""
    from authbridge.config import Settings
    from authbridge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"AUTHBRIDGE_ADMIN_LISTEN has value .*: use host:port"):
        Settings.from_env({"AUTHBRIDGE_ADMIN_LISTEN": value})
    ipv6 = Settings.from_env({"AUTHBRIDGE_ADMIN_LISTEN": "[::1]:9000"})
    assert ipv6.admin_listen == ("::1", 9000)
