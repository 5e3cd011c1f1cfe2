"""JWT auth styles end to end: AuthBridge's API against the real test authorization server process.

The server verifies what AuthBridge signs with Authlib's RFC 7523 pieces (the JWT bearer grant and
``private_key_jwt`` client assertions, each ``jti`` accepted once) and joserfc (``/api/jwt``, a
self-signed JWT sent as the token, reached through the proxy). Keys are generated here; only the
public halves are registered with the server.
"""

from __future__ import annotations

import html
import json
import re
import typing
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from joserfc.jwk import ECKey, OctKey, RSAKey

from authbridge.testing import FakeClock
from tests.conftest import ClientFactory, ClockedClientFactory, create_api_key, portal, sqlite_env
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

Json = dict[str, typing.Any]
SERVICE_ACCOUNT = "robot@project.iam.example"
PUBLIC_URL = "http://127.0.0.1:8000"
_RSA = rsa.generate_private_key(65537, 2048)
_EC = ec.generate_private_key(ec.SECP256R1())


def pem(key: PrivateKeyTypes) -> str:
    encoding, form = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, form, serialization.NoEncryption()).decode()


def register(oauth: OAuthServer, key_id: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    """Give the server the public half of ``key`` under a client id or kid."""
    public = key.public_key()
    jwk = RSAKey.import_key(public) if isinstance(public, rsa.RSAPublicKey) else ECKey.import_key(public)
    body = {"id": key_id, "jwk": jwk.as_dict()}
    httpx.post(f"{oauth.base_url}/_admin/jwt_keys", json=body, timeout=10).raise_for_status()


def key_file(key: rsa.RSAPrivateKey, oauth: OAuthServer) -> str:
    """A Google-style service account key file."""
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "project",
            "private_key_id": "pkid-1",
            "private_key": pem(key),
            "client_email": SERVICE_ACCOUNT,
            "client_id": "1234567890",
            "token_uri": oauth.token_url,
        }
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return sqlite_env(tmp_path, AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS="true")


@pytest.fixture
def client(make_client: ClientFactory, env: dict[str, str]) -> TestClient:
    return make_client(env)


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(client)}"}


def add(client: TestClient, headers: dict[str, str], spec: Json) -> None:
    response = client.post("/integrations", json=spec, headers=headers)
    assert response.status_code == 201, response.text


def connect(client: TestClient, headers: dict[str, str], key: str, **parameters: str) -> httpx.Response:
    body = {"integration": key, "name": "DEV", "parameters": parameters}
    response: httpx.Response = client.post("/connections", json=body, headers=headers)
    return response


def private_key_jwt_spec(oauth: OAuthServer, key: str, alg: str = "RS256") -> Json:
    return {
        "key": "keyed",
        "name": "Keyed client",
        "auth": {
            "type": "oauth2",
            "grant_type": "client_credentials",
            "token_url": oauth.token_url,
            "client_id": "keyclient",
            "client_auth": "private_key_jwt",
            "client_private_key": key,
            "client_key_id": "key-1",
            "client_assertion_alg": alg,
            "scopes": ["read"],
        },
        "request": {"base_url": oauth.base_url},
        "test": {"path": "/api/me"},
    }


def google_spec(oauth: OAuthServer) -> Json:
    return {
        "key": "gsa",
        "name": "Service account",
        "parameters": [{"name": "service_account_key", "secret": True, "required": True}],
        "auth": {
            "type": "jwt_bearer",
            "token_url": oauth.token_url,
            "scopes": ["read"],
            "scope_claim": True,
            "assertion": {"key": "{service_account_key}", "ttl": "1h"},
        },
        "request": {"base_url": oauth.base_url},
        "test": {"path": "/api/me"},
    }


@pytest.mark.parametrize(("alg", "private"), [("RS256", _RSA), ("ES256", _EC)])
def test_private_key_jwt_authenticates_the_client_and_the_key_is_never_shown(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, alg: str, private: typing.Any
) -> None:
    """Authlib's private_key_jwt verifies the assertion; a refresh signs a new one (jti once); no view shows the key."""
    register(oauth, "keyclient", private)
    key = pem(private)
    add(client, headers, private_key_jwt_spec(oauth, key, alg))
    created = connect(client, headers, "keyed")
    assert created.status_code == 201, created.text
    connection = created.json()["id"]
    assert client.post(f"/connections/{connection}/test", headers=headers).json()["ok"] is True
    assert client.post(f"/connections/{connection}/refresh", headers=headers).status_code == 200
    assert oauth.stats()["token_calls"]["client_credentials"] == 2
    shown = client.get("/integrations/keyed", headers=headers)
    assert shown.json()["auth"]["client_private_key"] == "********"
    listed = client.get("/integrations", headers=headers)
    body = key.splitlines()[1]
    for response in (shown, listed, created):
        assert body not in response.text
    # Saved again as shown (the mask), the stored key is kept and still signs.
    again = client.put("/integrations/keyed", json=shown.json(), headers=headers)
    assert again.status_code == 200, again.text
    assert client.post(f"/connections/{connection}/refresh", headers=headers).status_code == 200


def test_private_key_jwt_with_a_key_the_provider_does_not_know(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """Another key than the registered one: the provider refuses the client; the error shows no key."""
    register(oauth, "keyclient", _RSA)
    other = rsa.generate_private_key(65537, 2048)
    add(client, headers, private_key_jwt_spec(oauth, pem(other)))
    refused = connect(client, headers, "keyed")
    assert refused.status_code == 422
    assert "invalid_client" in refused.text
    assert pem(other).splitlines()[1] not in refused.text
    assert client.get("/connections", headers=headers).json()["items"] == []


def test_google_service_account_exchanges_a_new_assertion_at_each_refresh(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """The key file's client_email is the issuer, its private_key_id the kid; each refresh signs anew."""
    register(oauth, SERVICE_ACCOUNT, _RSA)
    add(client, headers, google_spec(oauth))
    created = connect(client, headers, "gsa", service_account_key=key_file(_RSA, oauth))
    assert created.status_code == 201, created.text
    connection = created.json()["id"]
    assert "private_key" not in created.text and "pkid-1" not in created.text
    me = client.post(f"/connections/{connection}/test", headers=headers).json()
    assert me["ok"] is True
    token = client.get(f"/connections/{connection}/token", headers=headers).json()
    assert token.get("refresh_token") is None
    for _ in range(2):  # the server accepts each jti once: a reused assertion would fail
        assert client.post(f"/connections/{connection}/refresh", headers=headers).status_code == 200
    assert oauth.stats()["token_calls"]["urn:ietf:params:oauth:grant-type:jwt-bearer"] == 3
    proxied = client.get(f"/proxy/{connection}/api/me", headers=headers)
    assert proxied.status_code == 200 and proxied.json()["client_id"] == SERVICE_ACCOUNT


def test_salesforce_jwt_flow_names_the_user_and_keeps_the_instance_url(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """iss the consumer key, sub the user, aud the login host; the answer's instance_url is the base URL."""
    register(oauth, "keyclient", _EC)
    spec = {
        "key": "sf",
        "name": "Salesforce",
        "parameters": [
            {"name": "consumer_key", "required": True},
            {"name": "username", "required": True},
            {"name": "private_key", "secret": True, "required": True},
        ],
        "auth": {
            "type": "jwt_bearer",
            "token_url": oauth.token_url,
            "assertion": {
                "alg": "ES256",
                "claims": {"iss": "{consumer_key}", "sub": "{username}", "aud": oauth.token_url},
                "ttl": "3m",
            },
        },
        "request": {"base_url": "{credentials.instance_url}"},
        "test": {"path": "/api/me"},
    }
    add(client, headers, spec)
    created = connect(client, headers, "sf", consumer_key="keyclient", username="alice", private_key=pem(_EC))
    assert created.status_code == 201, created.text
    me = client.get(f"/proxy/{created.json()['id']}/api/me", headers=headers)
    assert me.status_code == 200 and me.json()["sub"] == "alice"
    refused = connect(client, headers, "sf", consumer_key="keyclient", username="mallory", private_key=pem(_EC))
    assert refused.status_code == 422 and "invalid_grant" in refused.text


def app_store_spec(**auth: typing.Any) -> Json:
    return {
        "key": "asc",
        "name": "App Store Connect style",
        "parameters": [
            {"name": "issuer_id", "required": True},
            {"name": "key_id", "required": True},
            {"name": "private_key", "secret": True, "required": True},
            {"name": "api", "format": "url", "required": True},
        ],
        "auth": {
            "type": "jwt",
            "alg": "ES256",
            "kid": "{key_id}",
            "claims": {"iss": "{issuer_id}", "aud": "appstoreconnect-v1", "scope": ["GET /api/jwt"]},
            "ttl": "10m",
            **auth,
        },
        "request": {"base_url": "{api}"},
        "test": {"path": "/api/jwt"},
    }


def test_self_signed_jwt_is_verified_upstream_and_re_signed_in_its_window(
    make_clocked_client: ClockedClientFactory, env: dict[str, str], oauth: OAuthServer
) -> None:
    """The proxy sends the JWT; joserfc verifies it upstream; past half its lifetime a new one is signed and sent."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    client = make_clocked_client(env, clock=clock)
    headers = {"Authorization": f"Bearer {create_api_key(client)}"}
    register(oauth, "ES-KEY-1", _EC)
    add(client, headers, app_store_spec())
    created = connect(
        client, headers, "asc", issuer_id="team-1", key_id="ES-KEY-1", private_key=pem(_EC), api=oauth.base_url
    )
    assert created.status_code == 201, created.text
    connection = created.json()["id"]
    first = client.get(f"/proxy/{connection}/api/jwt", headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["header"] == {"typ": "JWT", "kid": "ES-KEY-1", "alg": "ES256"}
    claims = first.json()["claims"]
    assert claims["iss"] == "team-1" and claims["aud"] == "appstoreconnect-v1" and claims["scope"] == ["GET /api/jwt"]
    assert claims["exp"] - claims["iat"] == 600
    token = client.get(f"/connections/{connection}/token", headers=headers).json()
    assert token["expires_at"] is not None
    clock.advance(minutes=4)  # outside the window (half of 10 minutes): the same JWT
    assert (
        client.get(f"/connections/{connection}/token", headers=headers).json()["access_token"] == token["access_token"]
    )
    clock.advance(minutes=2)  # 6 minutes old: inside the window, a new JWT is signed
    renewed = client.get(f"/connections/{connection}/token", headers=headers).json()
    assert renewed["access_token"] != token["access_token"]
    second = client.get(f"/proxy/{connection}/api/jwt", headers=headers)
    assert second.status_code == 200
    assert second.json()["claims"]["iat"] == claims["iat"] + 360
    assert oauth.stats()["distinct_jwts"] == 2
    assert client.post(f"/connections/{connection}/test", headers=headers).json()["ok"] is True


def test_ghost_style_hmac_jwt_with_a_hex_secret(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """An HS256 JWT keyed by a hex secret (Ghost's Admin API keys), in an ``Authorization: Ghost`` header."""
    secret = bytes(range(32))
    httpx.post(
        f"{oauth.base_url}/_admin/jwt_keys",
        json={"id": "ghost-id", "jwk": OctKey.import_key(secret).as_dict()},
        timeout=10,
    ).raise_for_status()
    spec = {
        "key": "ghost",
        "name": "Ghost",
        "parameters": [{"name": "key_id", "required": True}, {"name": "secret", "secret": True, "required": True}],
        "auth": {
            "type": "jwt",
            "alg": "HS256",
            "key": "{secret}",
            "key_encoding": "hex",
            "kid": "{key_id}",
            "claims": {"aud": "/admin/"},
            "ttl": "5m",
        },
        "token": {"template": "Bearer {token}"},
        "request": {"base_url": oauth.base_url},
    }
    add(client, headers, spec)
    created = connect(client, headers, "ghost", key_id="ghost-id", secret=secret.hex())
    assert created.status_code == 201, created.text
    answer = client.get(f"/proxy/{created.json()['id']}/api/jwt", headers=headers)
    assert answer.status_code == 200 and answer.json()["claims"]["aud"] == "/admin/"


# -- hostile input: clear errors, nothing stored, no key material anywhere ----------------------------------


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("not a key file", "is not a PEM private key"),
        ('{"type": "service_account", "client_email": "x"}', "neither private_key (a key file) nor kty"),
        ('{"private_key": "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n"}', "not a readable PEM"),
        ('{"a": ' + "[" * 3000 + "]" * 3000 + "}", "not valid JSON"),
        ("{" + "x" * 5000, "not valid JSON"),
        (pem(_EC), "the key is an EC key; RS256 needs an RSA key"),
        ("A" * 20_000, "is longer than 16384 characters"),
    ],
)
def test_a_bad_key_file_is_refused_clearly(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, value: str, fragment: str
) -> None:
    """Malformed, wrong-kind or huge key files: 422 naming the problem, no connection, no token request."""
    add(client, headers, google_spec(oauth))
    refused = connect(client, headers, "gsa", service_account_key=value)
    assert refused.status_code == 422, refused.text
    assert fragment in refused.text
    assert "BEGIN" not in refused.text.replace("-----BEGIN PRIVATE KEY-----)", "") and "AAAA" not in refused.text
    assert client.get("/connections", headers=headers).json()["items"] == []
    assert oauth.stats()["token_calls"]["urn:ietf:params:oauth:grant-type:jwt-bearer"] == 0


@pytest.mark.parametrize(
    ("status", "body", "content_type", "fragment"),
    [
        (200, "<html>not json</html>", "text/html", "token endpoint"),
        (200, '{"token_type": "bearer"}', "application/json", "access_token"),
        (400, '{"error": "invalid_grant"}', "application/json", "invalid_grant"),
        (500, "\x00" * 2000, "application/octet-stream", "500"),
    ],
)
def test_a_token_endpoint_answering_garbage_is_a_clear_error(
    client: TestClient,
    headers: dict[str, str],
    oauth: OAuthServer,
    status: int,
    body: str,
    content_type: str,
    fragment: str,
) -> None:
    """Whatever the token endpoint answers to the assertion, the error says so and shows no assertion or key."""
    register(oauth, SERVICE_ACCOUNT, _RSA)
    add(client, headers, google_spec(oauth))
    oauth.configure(fail_next={"status": status, "body": body, "content_type": content_type})
    refused = connect(client, headers, "gsa", service_account_key=key_file(_RSA, oauth))
    assert refused.status_code == 422, refused.text
    assert fragment in refused.text
    assert "eyJ" not in refused.text and "pkid-1" not in refused.text
    assert client.get("/connections", headers=headers).json()["items"] == []


def test_an_end_user_connects_a_service_account_on_the_connect_page(
    make_client: ClientFactory, tmp_path: Path, oauth: OAuthServer
) -> None:
    """The hosted page asks for the key file (a password input, no other credential); a bad one is refused."""
    env = sqlite_env(
        tmp_path,
        AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS="true",
        AUTHBRIDGE_PUBLIC_URL=PUBLIC_URL,
        AUTHBRIDGE_ALLOWED_RETURN_ORIGINS="https://app.example",
    )
    client = make_client(env)
    admin = {"Authorization": f"Bearer {create_api_key(client)}"}
    register(oauth, SERVICE_ACCOUNT, _RSA)
    add(client, admin, google_spec(oauth))
    broker = client.app.state.broker  # type: ignore[attr-defined]
    key, _ = portal(client).call(broker.create_api_key, "web", ["connect"])
    body = {"end_user": {"id": "u-1"}, "allowed_integrations": ["gsa"], "return_to": "https://app.example/x"}
    session = client.post("/connect/sessions", json=body, headers={"Authorization": f"Bearer {key}"}).json()
    client.get(session["connect_url"].removeprefix(PUBLIC_URL), follow_redirects=False)
    form = client.get("/connect/i/gsa")
    assert 'type="password" id="f-param-service_account_key"' in form.text and 'name="cred.' not in form.text
    csrf = html.unescape(re.search(r'name="csrf" value="([^"]+)"', form.text).group(1))  # type: ignore[union-attr]
    bad = client.post("/connect/i/gsa", data={"csrf": csrf, "param.service_account_key": pem(_EC)})
    assert bad.status_code == 422 and "The account was not connected" in bad.text
    assert pem(_EC).splitlines()[1] not in bad.text
    done = client.post(
        "/connect/i/gsa",
        data={"csrf": csrf, "param.service_account_key": key_file(_RSA, oauth)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    (made,) = client.get("/connections", headers=admin).json()["items"]
    assert made["status"] == "active" and made["parameters"] == {"service_account_key": "********"}
