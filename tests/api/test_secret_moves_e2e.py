"""The attack of issue 9 item 7, end to end: an API key cannot redirect the client secret or refresh tokens.

AuthBridge (on both databases) talks to the real test OAuth server process; a second HTTP server plays
the attacker's host and records every request it gets. The rules themselves:
tests/spec/test_destinations.py; the API's answers: tests/api/test_secret_moves_api.py.
"""

from __future__ import annotations

import base64
import threading
import typing
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.api.test_connections_e2e import add_integration, authorized, code_spec, grant_spec
from tests.conftest import ClientFactory, create_api_key
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

Json = dict[str, typing.Any]


class Recorder:
    """An HTTP server on a loopback port that answers every request with a token and remembers it."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append((self.command, self.path, body, dict(self.headers)))
                answer = b'{"access_token": "from-the-attacker", "token_type": "Bearer", "expires_in": 3600}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = _record

            def log_message(self, format: str, *args: typing.Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def attacker() -> Iterator[Recorder]:
    """The attacker's host, recording what it receives."""
    recorder = Recorder()
    thread = threading.Thread(target=recorder.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.server.shutdown()
        recorder.server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    """AuthBridge on a fresh database, allowed to call loopback servers over http."""
    return make_client(
        {
            **app_env,
            "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
            "AUTHBRIDGE_PUBLIC_URL": "http://127.0.0.1:8000",
        }
    )


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    """The attacker's (or anyone's) API key."""
    return {"Authorization": f"Bearer {create_api_key(client)}"}


def stored_spec(client: TestClient, headers: dict[str, str]) -> Json:
    response = client.get("/integrations/idp", headers=headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    body.pop("redirect_uri", None)
    return body


def test_a_refused_move_keeps_refreshes_on_the_real_token_endpoint(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, attacker: Recorder
) -> None:
    """Pointing the token and revocation URLs at another host is refused; refresh and revoke still go to the IdP."""
    add_integration(client, headers, code_spec(oauth))
    connection = authorized(client, headers, oauth)
    stored = stored_spec(client, headers)
    assert stored["auth"]["client_secret"] == "********"
    redirected = {"token_url": f"{attacker.url}/token", "revoke_url": f"{attacker.url}/revoke"}

    kept = client.put("/integrations/idp", json={**stored, "auth": {**stored["auth"], **redirected}}, headers=headers)
    assert kept.status_code == 422, kept.text
    assert {e["path"] for e in kept.json()["error"]["errors"]} == {"auth.token_url", "auth.revoke_url"}
    assert "give auth.client_secret again" in kept.text

    invented = {**stored["auth"], **redirected, "client_secret": "invented-by-the-attacker"}
    replaced = client.put("/integrations/idp", json={**stored, "auth": invented}, headers=headers)
    assert replaced.status_code == 422, replaced.text
    assert "1 connected account" in replaced.text
    assert stored_spec(client, headers) == stored

    refreshed = client.post(f"/connections/{connection['id']}/refresh", headers=headers)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["status"] == "active"
    assert oauth.stats()["token_calls"]["refresh_token"] == 1
    deleted = client.delete(f"/connections/{connection['id']}", headers=headers)
    answer = deleted.json()
    assert (answer["deleted"], answer["revoked"], answer["revoke_error"]) == (True, True, None)
    assert [(r["token"], r["revoked"]) for r in answer["revocations"]] == [
        ("refresh_token", True),
        ("access_token", True),
    ]
    assert oauth.stats()["revocations"] == 2
    assert attacker.requests == []


def test_the_recorder_sees_a_move_that_is_allowed(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, attacker: Recorder
) -> None:
    """Control: with no accounts and a secret given again the host may move, and only that new secret goes there."""
    add_integration(client, headers, grant_spec(oauth, "client_credentials"))
    stored = stored_spec(client, headers)
    moved = {**stored["auth"], "token_url": f"{attacker.url}/token", "client_secret": "a-new-secret"}
    response = client.put("/integrations/idp", json={**stored, "auth": moved}, headers=headers)
    assert response.status_code == 200, response.text
    created = client.post("/connections", json={"integration": "idp", "name": "PROD"}, headers=headers)
    assert created.status_code == 201, created.text
    assert len(attacker.requests) == 1
    method, path, body, sent = attacker.requests[0]
    assert (method, path) == ("POST", "/token")
    seen = (body + repr(sent).encode()).decode("latin-1")
    assert oauth.CONFIDENTIAL_SECRET not in seen
    basic = base64.b64decode(sent["Authorization"].removeprefix("Basic ")).decode()
    assert basic.endswith(":a-new-secret")
