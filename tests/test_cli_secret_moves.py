"""`integrations apply` refuses to send stored secrets to new hosts; `--move-secrets` is the operator's yes.

The same rule through the HTTP API: tests/api/test_secret_moves_api.py.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from authbridge.store import Store
from tests.test_cli import ACME, SECRET, invoke, with_store

NEW_HOST = "https://{serverName}.acme-new.example"


def assert_refused(result: Result, *fragments: str) -> None:
    """The command failed listing the problem (no traceback), nothing on stdout."""
    assert result.exit_code == 1, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: 1 problem in the integration spec:")
    for fragment in fragments:
        assert fragment in result.stderr


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "acme.yaml"
    file.write_text(text)
    return file


def test_apply_refuses_a_kept_secret_on_a_new_host(runner: CliRunner, tmp_path: Path) -> None:
    """An exported spec (secret ``********``) whose token URL moved host is refused, naming the field."""
    env = {"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data")}
    assert invoke(runner, env, "integrations", "apply", str(write(tmp_path, ACME))).exit_code == 0
    exported = invoke(runner, env, "integrations", "show", "acme").stdout
    assert "client_secret: '********'" in exported or 'client_secret: "********"' in exported
    moved = exported.replace("https://{serverName}.acme.example/token", f"{NEW_HOST}/token")
    assert moved != exported

    result = invoke(runner, env, "integrations", "apply", str(write(tmp_path, moved)))
    assert_refused(result, "acme.auth.token_url", "give auth.client_secret again")
    assert SECRET not in result.stderr

    async def token_url(store: Store) -> object:
        return (await store.integrations.get("acme")).spec.auth.token_url  # type: ignore[union-attr]

    assert with_store(env, token_url) == "https://{serverName}.acme.example/token"
    again = invoke(runner, env, "integrations", "apply", str(write(tmp_path, moved.replace("'********'", SECRET))))
    assert again.exit_code == 0, again.stderr
    assert with_store(env, token_url) == f"{NEW_HOST}/token"


def test_apply_moves_accounts_secrets_only_with_the_flag(runner: CliRunner, tmp_path: Path) -> None:
    """With a connected account, a new base URL host needs ``--move-secrets``."""
    env = {"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data")}
    assert invoke(runner, env, "integrations", "apply", str(write(tmp_path, ACME))).exit_code == 0

    async def add_account(store: Store) -> None:
        await store.connections.create(
            integration_key="acme",
            name="DEV",
            parameters={"serverName": "eu", "apiSecret": "k"},
            secret_names={"apiSecret"},
        )

    with_store(env, add_account)
    moved = write(tmp_path, ACME.replace("https://{serverName}.acme.example/api", f"{NEW_HOST}/api"))
    refused = invoke(runner, env, "integrations", "apply", str(moved))
    assert_refused(refused, "acme.request.base_url", "1 connected account", "--move-secrets")

    applied = invoke(runner, env, "integrations", "apply", "--move-secrets", str(moved))
    assert applied.exit_code == 0, applied.stderr
    assert "updated: acme" in applied.stderr

    async def base_url(store: Store) -> object:
        return (await store.integrations.get("acme")).spec.request.base_url

    assert with_store(env, base_url) == f"{NEW_HOST}/api"
