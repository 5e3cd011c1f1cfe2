"""``authbridge connections ...`` against the real test OAuth server (see tests/api/test_connections_e2e.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from typer.testing import CliRunner, Result

from authbridge.cli import app
from tests.servers.fixtures import OAuthServer


def _invoke(runner: CliRunner, env: dict[str, str], *args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), env=env, catch_exceptions=False, input=input)


def _env(tmp_path: Path) -> dict[str, str]:
    return {"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data"), "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true"}


def _apply(runner: CliRunner, env: dict[str, str], tmp_path: Path, text: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    result = _invoke(runner, env, "integrations", "apply", str(spec))
    assert result.exit_code == 0, result.stderr


def _client_credentials(oauth: OAuthServer) -> str:
    return f"""
key: partner
name: Partner
auth:
  type: oauth2
  grant_type: client_credentials
  token_url: {oauth.token_url}
  revoke_url: {oauth.revoke_url}
  client_id: {oauth.CONFIDENTIAL_ID}
  client_secret: "{oauth.CONFIDENTIAL_SECRET}"
  scopes: [read]
request:
  base_url: {oauth.base_url}
test: {{path: /api/me}}
"""


def test_connection_lifecycle_from_the_cli(runner: CliRunner, tmp_path: Path, oauth: OAuthServer) -> None:
    """create prints the id alone, then list, show, token, test, refresh and delete work on it."""
    env = _env(tmp_path)
    _apply(runner, env, tmp_path, _client_credentials(oauth))
    created = _invoke(runner, env, "connections", "create", "partner", "--name", "PROD")
    assert created.exit_code == 0, created.stderr
    connection_id = created.stdout.strip()
    assert len(connection_id) == 32 and "active" in created.stderr

    listed = json.loads(_invoke(runner, env, "connections", "list", "--json").stdout)
    assert [(c["id"], c["status"]) for c in listed] == [(connection_id, "active")]
    shown = _invoke(runner, env, "connections", "show", connection_id, "--json")
    assert json.loads(shown.stdout)["scopes"] == ["read"]

    token = _invoke(runner, env, "connections", "token", connection_id).stdout.strip()
    assert token not in shown.stdout and token not in created.stdout + created.stderr
    me = httpx.get(oauth.me_url, headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200

    tested = _invoke(runner, env, "connections", "test", connection_id)
    assert tested.exit_code == 0 and tested.stdout.startswith("ok: GET ")

    refreshed = _invoke(runner, env, "connections", "refresh", connection_id)
    assert refreshed.exit_code == 0 and "refreshed" in refreshed.stderr
    assert oauth.stats()["token_calls"]["client_credentials"] == 2
    token = _invoke(runner, env, "connections", "token", connection_id).stdout.strip()

    deleted = _invoke(runner, env, "connections", "delete", connection_id)
    assert deleted.exit_code == 0 and "revoked upstream" in deleted.stderr
    assert httpx.get(oauth.me_url, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert json.loads(_invoke(runner, env, "connections", "list", "--json").stdout) == []


def test_authorization_code_create_prints_the_url(runner: CliRunner, tmp_path: Path, oauth: OAuthServer) -> None:
    """For the authorization code grant, create prints the authorize URL alone on stdout."""
    env = _env(tmp_path)
    _apply(
        runner,
        env,
        tmp_path,
        f"""
key: demo
name: Demo
auth:
  type: oauth2
  authorization_url: {oauth.authorize_url}
  token_url: {oauth.token_url}
  client_id: {oauth.CONFIDENTIAL_ID}
  client_secret: "{oauth.CONFIDENTIAL_SECRET}"
  scopes: [read, write]
""",
    )
    created = _invoke(runner, env, "connections", "create", "demo", "--name", "DEV")
    assert created.exit_code == 0, created.stderr
    url = httpx.URL(created.stdout.strip())
    assert str(url).startswith(oauth.authorize_url)
    assert url.params["scope"] == "read write" and url.params["code_challenge_method"] == "S256"
    assert "open this URL" in created.stderr


def test_create_refusal_is_one_clean_error(runner: CliRunner, tmp_path: Path, oauth: OAuthServer) -> None:
    """A refused token request exits 1 with the upstream's reason, and stores nothing."""
    env = _env(tmp_path)
    _apply(runner, env, tmp_path, _client_credentials(oauth).replace(oauth.CONFIDENTIAL_SECRET, "wrong-secret-x"))
    created = _invoke(runner, env, "connections", "create", "partner", "--name", "PROD")
    assert created.exit_code == 1
    assert created.stderr.startswith("error: could not get a token") and "invalid_client" in created.stderr
    assert "wrong-secret-x" not in created.stderr and "Traceback" not in created.stderr
    assert json.loads(_invoke(runner, env, "connections", "list", "--json").stdout) == []


def test_hidden_prompt_for_a_credential(runner: CliRunner, tmp_path: Path) -> None:
    """``--credential token=`` asks for the value without echoing it."""
    env = _env(tmp_path)
    _apply(
        runner,
        env,
        tmp_path,
        "key: giphy\nname: Giphy\nauth: {type: api_token}\ntoken: {in: query, name: api_key, template: '{token}'}\n",
    )
    created = _invoke(
        runner, env, "connections", "create", "giphy", "--name", "me", "-c", "token=", input="tok-SECRET-1\n"
    )
    assert created.exit_code == 0, created.stderr
    assert "tok-SECRET-1" not in created.stdout + created.stderr
    token = _invoke(runner, env, "connections", "token", created.stdout.strip())
    assert token.stdout.strip() == "tok-SECRET-1"


def test_an_mcp_server_is_connected_from_the_cli_by_its_url(
    runner: CliRunner, tmp_path: Path, oauth: OAuthServer
) -> None:
    """``connections create mcp -p server_url=...``: discovery and registration run, the authorize URL is printed."""
    env = _env(tmp_path)
    server_url = f"{oauth.base_url}/mcp"
    created = _invoke(runner, env, "connections", "create", "mcp", "--name", "tools", "-p", f"server_url={server_url}")
    assert created.exit_code == 0, created.stderr
    url = httpx.URL(created.stdout.strip())
    assert str(url).startswith(oauth.authorize_url)
    assert url.params["resource"] == server_url and url.params["code_challenge_method"] == "S256"
    bad = _invoke(runner, env, "connections", "create", "mcp", "--name", "bad", "-p", "server_url=ftp://x/mcp")
    assert bad.exit_code != 0 and "server_url" in bad.stderr and "Traceback" not in bad.stderr
