"""Multi-step token requests end to end: ``authbridge run`` as its own process, a real provider on loopback.

The provider (``tests/servers/step_provider.py``) issues single-use nonces, spends each on a login
that answers a session cookie, and refuses replays; its GitHub-App-like endpoint verifies the app
JWT with joserfc before it issues an installation token. The unit tests of the flow are
``tests/auth/test_steps.py``.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.proxy.conftest import Server, create_key, run_authbridge, server_env
from tests.servers.step_provider import APP_ID, INSTALLATION_ID, PASSWORD, USER, StepProvider, run_step_provider


@pytest.fixture(scope="module")
def provider_server() -> Iterator[StepProvider]:
    with run_step_provider() as provider:
        yield provider


@pytest.fixture
def provider(provider_server: StepProvider) -> StepProvider:
    provider_server.state.reset()
    return provider_server


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("steps") / "data"


@pytest.fixture(scope="module")
def bridge(data_dir: Path) -> Iterator[Server]:
    """AuthBridge with debug logs (so that what they would leak is there to see), a 2 s outbound deadline."""
    env = server_env(AUTHBRIDGE_DATA_DIR=str(data_dir), AUTHBRIDGE_LOG_LEVEL="debug", AUTHBRIDGE_HTTP_TIMEOUT="2")
    with run_authbridge(env, create_key(env, "steps")) as running:
        yield running


def nonce_login(provider: StepProvider, key: str = "vault") -> dict[str, typing.Any]:
    """The examples/nonce-login.yaml shape, pointed at the loopback provider."""
    return {
        "key": key,
        "name": "Vault",
        "parameters": [{"name": "base", "format": "url", "required": True}],
        "auth": {
            "type": "custom_token",
            "steps": [
                {
                    "name": "nonce",
                    "url": "{base}/auth/nonce",
                    "method": "GET",
                    "capture": {"nonce": {"json": "data.nonce", "pattern": "[A-Za-z0-9_-]{16,128}"}},
                },
                {
                    "name": "login",
                    "url": "{base}/auth/login",
                    "body": "json",
                    "headers": {"X-Nonce": "{captured.nonce}"},
                    "params": {"user": "{username}", "password": "{password}", "nonce": "{captured.nonce}"},
                    "capture": {"session": {"cookie": "vault_session"}},
                },
            ],
            "token_response": {"access_token": "captured.session", "expires_in": "ttl"},
        },
        "token": {"name": "Cookie", "template": "vault_session={token}"},
        "request": {"base_url": "{base}/api"},
        "test": {"path": "/me"},
    }


def connect(bridge: Server, provider: StepProvider, key: str = "vault") -> httpx.Response:
    return httpx.post(
        f"{bridge.url}/connections",
        json={
            "integration": key,
            "name": "DEV",
            "parameters": {"base": provider.url},
            "credentials": {"username": USER, "password": PASSWORD},
        },
        headers=bridge.headers,
        timeout=30,
    )


def issued_nonces(provider: StepProvider) -> set[str]:
    return provider.state.spent | provider.state.nonces


def test_connect_runs_the_steps_and_the_proxy_refreshes_by_running_them_again(
    bridge: Server, provider: StepProvider, data_dir: Path
) -> None:
    """Connect: nonce then login; a stale session makes the proxy re-run both steps once and retry."""
    bridge.integration(nonce_login(provider))
    created = connect(bridge, provider)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    assert provider.state.calls == ["GET /auth/nonce", "POST /auth/login"]
    first_session = next(iter(provider.state.sessions))

    me = httpx.get(f"{bridge.url}/proxy/{cid}/me", headers=bridge.headers, timeout=30)
    assert me.status_code == 200 and me.json()["name"] == "Alice"

    provider.state.expire_sessions()
    provider.state.calls.clear()
    again = httpx.get(f"{bridge.url}/proxy/{cid}/me", headers=bridge.headers, timeout=30)
    assert again.status_code == 200, again.text
    assert provider.state.calls == ["GET /api/me", "GET /auth/nonce", "POST /auth/login", "GET /api/me"]
    assert len(provider.state.spent) == 2  # a fresh nonce, never the spent one

    # Neither a nonce, nor a session, nor the password is in the server's log or in clear in its database.
    secrets = [*issued_nonces(provider), first_session, *provider.state.sessions, PASSWORD]
    log = bridge.log_text()
    stored = b"".join(path.read_bytes() for path in data_dir.rglob("*") if path.is_file())
    for value in secrets:
        assert value not in log
        assert value.encode() not in stored


def test_a_replayed_nonce_is_refused_and_the_error_names_the_step(bridge: Server, provider: StepProvider) -> None:
    """A provider refusing the login says so through the API: step 2, its status and code; nothing is stored."""
    bridge.integration(nonce_login(provider, "vaultreplay"))
    assert connect(bridge, provider, "vaultreplay").status_code == 201
    provider.state.mode = "stale_nonce"
    response = connect(bridge, provider, "vaultreplay")
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert "step 2 (login)" in message and "401 invalid_nonce" in message and "nonce replayed" in message
    for value in provider.state.spent:
        assert value not in message
    listed = httpx.get(f"{bridge.url}/connections", headers=bridge.headers).json()["items"]
    assert len([item for item in listed if item["integration"] == "vaultreplay"]) == 1


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("no_nonce", "step 1 (nonce): token endpoint {url}/auth/nonce answered no json data.nonce to capture"),
        (
            "crlf_nonce",
            "step 1 (nonce): token endpoint {url}/auth/nonce answered an unusable nonce (it holds a control",
        ),
        ("huge_nonce", "step 1 (nonce): token endpoint {url}/auth/nonce answered an unusable nonce (it is over 8192"),
        ("huge_body", "step 1 (nonce): {url}/auth/nonce answered more than 1 MiB after decompression"),
        ("login_500", "step 2 (login): token endpoint {url}/auth/login answered 500 server_error: database down"),
    ],
)
def test_a_broken_provider_fails_clearly(bridge: Server, provider: StepProvider, mode: str, expected: str) -> None:
    """A missing, hostile (CR/LF) or oversized nonce, a body past the cap, a failing login: an error naming the step."""
    key = f"vault{mode.replace('_', '')}"
    bridge.integration(nonce_login(provider, key))
    provider.state.mode = mode
    response = connect(bridge, provider, key)
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert expected.format(url=provider.url) in message
    assert "X-Evil" not in message and "nnnnnnnn" not in message
    if mode == "login_500":
        assert provider.state.calls == ["GET /auth/nonce", "POST /auth/login"]
    else:
        assert provider.state.calls == ["GET /auth/nonce"]


def test_a_refresh_that_fails_keeps_the_credentials(bridge: Server, provider: StepProvider) -> None:
    """POST /connections/{id}/refresh while the login is down: 502 naming step 2; the old session is still used."""
    bridge.integration(nonce_login(provider, "vaultkeep"))
    created = connect(bridge, provider, "vaultkeep")
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    provider.state.mode = "login_500"
    refreshed = httpx.post(f"{bridge.url}/connections/{cid}/refresh", headers=bridge.headers, timeout=30)
    assert refreshed.status_code == 502, refreshed.text
    assert "step 2 (login)" in refreshed.json()["error"]["message"]
    provider.state.mode = "ok"
    me = httpx.get(f"{bridge.url}/proxy/{cid}/me", headers=bridge.headers, timeout=30)
    assert me.status_code == 200, me.text


@pytest.fixture(scope="module")
def app_key() -> tuple[str, bytes]:
    """A GitHub App RSA key pair: the private key (PEM) AuthBridge signs with, the public key the provider has."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def github_app(provider: StepProvider, key: str = "ghapp") -> dict[str, typing.Any]:
    """examples/github-app.yaml, its API host the loopback provider."""
    spec = yaml.safe_load((Path(__file__).parents[2] / "examples" / "github-app.yaml").read_text())
    spec["key"] = key
    spec["parameters"].append({"name": "api", "format": "url", "required": True})
    step = spec["auth"]["steps"][0]
    step["url"] = "{api}/app/installations/{installation_id}/access_tokens"
    spec["request"]["base_url"] = "{api}"
    return typing.cast("dict[str, typing.Any]", spec)


def connect_app(bridge: Server, provider: StepProvider, private_key: str, key: str, **values: str) -> httpx.Response:
    parameters = {"api": provider.url, "app_id": APP_ID, "installation_id": INSTALLATION_ID, **values}
    return httpx.post(
        f"{bridge.url}/connections",
        json={"integration": key, "name": "DEV", "parameters": {**parameters, "app_private_key": private_key}},
        headers=bridge.headers,
        timeout=30,
    )


def test_github_app_installation_token_with_a_verified_app_jwt(
    bridge: Server, provider: StepProvider, app_key: tuple[str, bytes], data_dir: Path
) -> None:
    """The app JWT verifies (RS256, iss, 10-minute window); a 401 from the API signs a new one and retries."""
    private, public = app_key
    provider.state.app_public_key = public
    bridge.integration(github_app(provider))
    created = connect_app(bridge, provider, private, "ghapp")
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    claims = provider.state.jwt_claims[0]
    assert claims["iss"] == APP_ID and 0 < claims["exp"] - claims["iat"] <= 600

    repos = httpx.get(f"{bridge.url}/proxy/{cid}/installation/repositories", headers=bridge.headers, timeout=30)
    assert repos.status_code == 200, repos.text

    provider.state.expire_sessions()
    provider.state.calls.clear()
    again = httpx.get(f"{bridge.url}/proxy/{cid}/installation/repositories", headers=bridge.headers, timeout=30)
    assert again.status_code == 200, again.text
    assert provider.state.calls == [
        "GET /installation/repositories",
        f"POST /app/installations/{INSTALLATION_ID}/access_tokens",
        "GET /installation/repositories",
    ]
    assert len(provider.state.jwt_claims) == 2
    body = "".join(private.splitlines()[1:-1])
    stored = b"".join(path.read_bytes() for path in data_dir.rglob("*") if path.is_file())
    assert body[:64] not in bridge.log_text() and body[:64].encode() not in stored


def test_github_app_errors_name_the_step_and_never_the_key(
    bridge: Server, provider: StepProvider, app_key: tuple[str, bytes]
) -> None:
    """A wrong installation, a key the provider does not know, a PEM that is no key: clear errors, no key material."""
    private, public = app_key
    provider.state.app_public_key = public
    bridge.integration(github_app(provider, "ghappbad"))

    wrong = connect_app(bridge, provider, private, "ghappbad", installation_id="78")
    assert wrong.status_code == 422, wrong.text
    message = wrong.json()["error"]["message"]
    assert "step 1 (installation_token)" in message and "/app/installations/78/access_tokens answered 404" in message

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    refused = connect_app(bridge, provider, stranger, "ghappbad")
    assert refused.status_code == 422, refused.text
    assert "step 1 (installation_token)" in refused.json()["error"]["message"]
    assert "answered 401" in refused.json()["error"]["message"]

    garbage = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----"
    broken = connect_app(bridge, provider, garbage, "ghappbad")
    assert broken.status_code == 422, broken.text
    text = broken.text
    assert "auth.steps.0.jwt.key" in text and "bm90IGEga2V5" not in text
    for answer in (wrong, refused, broken):
        assert "".join(private.splitlines()[1:-1])[:40] not in answer.text
