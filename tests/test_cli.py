"""The ``authbridge`` command line: integrations, API keys, key rotation, info, errors, and ``run``.

The HTTP API drives the same broker: see tests/api/test_integrations_api.py.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import httpx
import pytest
import yaml
from typer.testing import CliRunner, Result

from authbridge.app import open_store
from authbridge.cli import app
from authbridge.config import Settings
from authbridge.spec import load_spec
from authbridge.store import Store, generate_key

T = TypeVar("T")

SECRET = "cs-CLI-TEST-0b7e3d21aa"

ACME = f"""\
key: acme
name: Acme CRM
parameters:
  - name: serverName
    required: true
  - name: apiSecret
    secret: true
auth:
  type: oauth2
  authorization_url: https://{{serverName}}.acme.example/authorize
  token_url: https://{{serverName}}.acme.example/token
  client_id: abc
  client_secret: {SECRET}
  scopes: [read, write]
token:
  template: "Bearer {{token}}"
request:
  base_url: https://{{serverName}}.acme.example/api
  headers: {{X-Key: "{{apiSecret}}"}}
"""

GIPHY = """\
key: giphy
name: Giphy
auth: {type: api_token}
token: {in: query, name: api_key, template: "{token}"}
request: {base_url: https://api.giphy.com/v1}
"""

#: The four classic mistakes: a bad key, an undeclared {param}, a token template without {token}, GET/POST typo.
FOUR_ERRORS = """\
key: bad-key
name: Four errors
parameters:
  - name: server
auth:
  type: custom_token
  token_url: https://{server}.example/{tenant}/token
  token_method: GTE
token:
  template: "Bearer abc"
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Variables for a CLI on a SQLite data dir in ``tmp_path``."""
    return {"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    """A directory with two valid spec files."""
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "acme.yaml").write_text(ACME)
    (folder / "giphy.yml").write_text(GIPHY)
    (folder / "notes.txt").write_text("not a spec")
    return folder


def invoke(runner: CliRunner, env: dict[str, str], *args: str) -> Result:
    """Run ``authbridge ARGS`` with ``env``; exceptions other than exits fail the test."""
    result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
    return result


def with_store(env: dict[str, str], work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store the CLI would open with ``env``, run ``work`` on it, close it."""

    async def run() -> T:
        store = await open_store(Settings.from_env(env))
        try:
            return await work(store)
        finally:
            await store.close()

    return anyio.run(run)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """The command failed with exactly one ``error: ...`` line on stderr, no traceback, nothing on stdout."""
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_apply_list_show(runner: CliRunner, env: dict[str, str], specs: Path) -> None:
    """``apply DIR`` creates every spec; ``list`` and ``show`` (plain and --json) show them with secrets masked."""
    applied = invoke(runner, env, "integrations", "apply", str(specs))
    assert applied.exit_code == 0, applied.stderr
    assert applied.stdout == ""
    assert applied.stderr.splitlines() == ["created: acme", "created: giphy"]

    listed = invoke(runner, env, "integrations", "list")
    assert listed.stdout.splitlines()[0].split() == ["KEY", "AUTH", "VERSION", "NAME"]
    assert listed.stdout.splitlines()[1].split() == ["acme", "oauth2", "1", "Acme", "CRM"]
    rows = json.loads(invoke(runner, env, "integrations", "list", "--json").stdout)
    assert rows == [
        {"key": "acme", "name": "Acme CRM", "auth": "oauth2", "version": 1},
        {"key": "giphy", "name": "Giphy", "auth": "api_token", "version": 1},
    ]

    shown = invoke(runner, env, "integrations", "show", "acme")
    assert shown.exit_code == 0
    assert shown.stdout.startswith("# version 1; redirect URI to register: http://127.0.0.1:8000/oauth/callback\n")
    assert "client_secret: '********'" in shown.stdout
    data = json.loads(invoke(runner, env, "integrations", "show", "acme", "--json").stdout)
    assert data["auth"]["client_secret"] == "********"
    assert data["redirect_uri"] == "http://127.0.0.1:8000/oauth/callback" and data["version"] == 1
    giphy = json.loads(invoke(runner, env, "integrations", "show", "giphy", "--json").stdout)
    assert giphy["redirect_uri"] is None
    for result in (applied, listed, shown):
        assert SECRET not in result.output


def test_list_when_empty(runner: CliRunner, env: dict[str, str]) -> None:
    """An empty list says how to start on stderr, and prints [] with --json."""
    empty = invoke(runner, env, "integrations", "list")
    assert empty.exit_code == 0 and empty.stdout == "" and "integrations apply" in empty.stderr
    assert json.loads(invoke(runner, env, "integrations", "list", "--json").stdout) == []


def test_export_applies_again_unchanged(runner: CliRunner, env: dict[str, str], specs: Path, tmp_path: Path) -> None:
    """``export`` prints YAML that, applied again, leaves the spec and the stored secret as they were."""
    invoke(runner, env, "integrations", "apply", str(specs / "acme.yaml"))
    exported = invoke(runner, env, "integrations", "export", "acme")
    assert exported.exit_code == 0
    assert SECRET not in exported.stdout
    assert yaml.safe_load(exported.stdout)["auth"]["client_secret"] == "********"
    before = with_store(env, lambda s: s.integrations.get("acme"))
    assert before.spec == load_spec(ACME)

    again = tmp_path / "exported.yaml"
    again.write_text(exported.stdout)
    reapplied = invoke(runner, env, "integrations", "apply", str(again))
    assert reapplied.exit_code == 0 and reapplied.stderr == "updated: acme\n"
    after = with_store(env, lambda s: s.integrations.get("acme"))
    assert after.spec == before.spec
    assert after.spec.client_secret == SECRET
    assert invoke(runner, env, "integrations", "export", "acme").stdout == exported.stdout


def test_delete(runner: CliRunner, env: dict[str, str], specs: Path) -> None:
    """``delete`` removes an integration; one with connections, or an unknown key, fails with one line."""
    invoke(runner, env, "integrations", "apply", str(specs))
    deleted = invoke(runner, env, "integrations", "delete", "giphy")
    assert deleted.exit_code == 0 and deleted.stderr == "deleted: giphy\n"
    assert_one_line_error(invoke(runner, env, "integrations", "delete", "giphy"), "no integration with key 'giphy'")

    with_store(
        env,
        lambda s: s.connections.create(integration_key="acme", name="DEV", parameters={"serverName": "dev"}),
    )
    busy = invoke(runner, env, "integrations", "delete", "acme")
    assert_one_line_error(busy, "1 connected account")


def test_validate_lists_every_error(runner: CliRunner, env: dict[str, str], tmp_path: Path) -> None:
    """``validate`` exits 1 and lists all four problems of the file, each with its line, without a database."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(FOUR_ERRORS)
    result = invoke(runner, env, "integrations", "validate", str(bad))
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "error: 4 problems in the integration spec:"
    assert lines[1:] == [
        f"  {bad}: line 1: key: must contain only letters and digits (1 to 64 of them)",
        f"  {bad}: line 7: auth.token_url: references {{tenant}}, which is not a declared parameter",
        f"  {bad}: line 8: auth.token_method: must be GET or POST",
        f"  {bad}: line 10: token.template: must contain {{token}}, where the token goes",
    ]
    assert not (tmp_path / "data").exists()


def test_validate_good_files(runner: CliRunner, env: dict[str, str], specs: Path) -> None:
    """``validate`` accepts valid files and directories, reporting each spec on stderr."""
    result = invoke(runner, env, "integrations", "validate", str(specs), str(specs / "acme.yaml"))
    assert result.exit_code == 0
    assert result.stderr.splitlines() == ["ok: acme (oauth2)", "ok: giphy (api_token)", "ok: acme (oauth2)"]


def test_apply_saves_nothing_when_one_file_is_bad(
    runner: CliRunner, env: dict[str, str], specs: Path, tmp_path: Path
) -> None:
    """``apply`` with one bad file among good ones saves none of them."""
    (specs / "zbad.yaml").write_text(FOUR_ERRORS)
    result = invoke(runner, env, "integrations", "apply", str(specs))
    assert result.exit_code == 1 and "4 problems" in result.stderr
    assert with_store(env, lambda s: s.integrations.list()) == []


def test_apply_refuses_hooks_unless_allowed(runner: CliRunner, env: dict[str, str], tmp_path: Path) -> None:
    """A spec naming a hook is applied only when its module is in AUTHBRIDGE_HOOK_MODULES."""
    hooked = tmp_path / "hooked.yaml"
    hooked.write_text(GIPHY.replace("auth: {type: api_token}", "auth: {type: api_token, hooks: {test: 'myhooks:t'}}"))
    refused = invoke(runner, env, "integrations", "apply", str(hooked))
    assert refused.exit_code == 1 and "giphy.auth.hooks.test" in refused.stderr
    allowed = invoke(runner, {**env, "AUTHBRIDGE_HOOK_MODULES": "myhooks"}, "integrations", "apply", str(hooked))
    assert allowed.exit_code == 0 and allowed.stderr == "created: giphy\n"


def test_api_keys(runner: CliRunner, env: dict[str, str], tmp_path: Path) -> None:
    """``create`` prints the key alone on stdout; ``list`` never shows it; ``revoke`` makes it invalid."""
    created = invoke(runner, env, "api-keys", "create", "--name", "ci")
    assert created.exit_code == 0
    key = created.stdout.strip()
    assert created.stdout == key + "\n"
    assert key.startswith("ab_") and len(key) > 40
    assert "shown only this once" in created.stderr and key not in created.stderr
    assert with_store(env, lambda s: s.api_keys.verify(key)) is not None

    listed = invoke(runner, env, "api-keys", "list")
    assert key not in listed.output
    assert listed.stdout.splitlines()[1].split()[1:] == [key[:10], "active", "admin", "ci"]
    rows = json.loads(invoke(runner, env, "api-keys", "list", "--json").stdout)
    assert [(r["name"], r["prefix"], r["revoked"], r["scopes"]) for r in rows] == [("ci", key[:10], False, ["admin"])]

    revoked = invoke(runner, env, "api-keys", "revoke", "ci")
    assert revoked.exit_code == 0 and revoked.stderr == f"revoked API key {rows[0]['id']}\n"
    assert with_store(env, lambda s: s.api_keys.verify(key)) is None
    assert json.loads(invoke(runner, env, "api-keys", "list", "--json").stdout)[0]["revoked"] is True
    assert_one_line_error(invoke(runner, env, "api-keys", "revoke", "ci"), "no active API key")


def test_api_key_scopes(runner: CliRunner, env: dict[str, str]) -> None:
    """``--scope`` (repeatable) sets what a key may do; an unknown scope is refused and nothing is created."""
    created = invoke(runner, env, "api-keys", "create", "--name", "web", "--scope", "connect", "--scope", "token")
    assert created.exit_code == 0 and "scopes: connect token" in created.stderr
    record = with_store(env, lambda s: s.api_keys.verify(created.stdout.strip()))
    assert record is not None and record.scopes == ("connect", "token")

    wrong = invoke(runner, env, "api-keys", "create", "--name", "bad", "--scope", "everything")
    assert wrong.exit_code != 0 and wrong.stdout == "" and "Traceback" not in wrong.stderr
    assert wrong.stderr.splitlines() == [
        "error: invalid API key request:",
        "  scope: unknown scope 'everything'; scopes are admin, connect, connections:read, connections:write, "
        "proxy, token",
    ]
    assert [r["name"] for r in json.loads(invoke(runner, env, "api-keys", "list", "--json").stdout)] == ["web"]


def test_master_key_file_is_private(runner: CliRunner, env: dict[str, str], tmp_path: Path) -> None:
    """The key file is created with mode 0600 on first use, in a 0700 directory."""
    assert invoke(runner, env, "api-keys", "list").exit_code == 0
    key_file = tmp_path / "data" / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700


def _key_file_kids(path: Path) -> list[str]:
    return [line.split(":", 1)[0] for line in path.read_text().splitlines() if line and not line.startswith("#")]


async def _add_secret_parameter(store: Store) -> None:
    await store.connections.create(
        integration_key="acme",
        name="PROD",
        parameters={"serverName": "prod", "apiSecret": "param-secret-CLI-77"},
        secret_names={"apiSecret"},
    )


async def _secrets(store: Store) -> tuple[str | None, dict[str, str], int]:
    spec = (await store.integrations.get("acme")).spec
    connection = (await store.connections.list())[0]
    return spec.client_secret, connection.parameters, await store.keys.stale_count()


def test_rotate_with_the_key_file(runner: CliRunner, env: dict[str, str], specs: Path, tmp_path: Path) -> None:
    """``encryption rotate`` adds a key to the file, re-encrypts every secret under it, and the data stays readable."""
    invoke(runner, env, "integrations", "apply", str(specs))
    with_store(env, _add_secret_parameter)
    key_file = tmp_path / "data" / "master.key"
    [old] = _key_file_kids(key_file)

    rotated = invoke(runner, env, "encryption", "rotate")
    assert rotated.exit_code == 0, rotated.stderr
    kids = _key_file_kids(key_file)
    assert len(kids) == 2 and kids[1] == old
    assert rotated.stderr == f"active key: {kids[0]}; re-encrypted 2 secret(s)\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert with_store(env, _secrets) == (SECRET, {"serverName": "prod", "apiSecret": "param-secret-CLI-77"}, 0)
    info = json.loads(invoke(runner, env, "info", "--json").stdout)
    assert info["active_key"] == kids[0] and info["keys"] == 2


def _entry(kid: str) -> str:
    return f"{kid}:{base64.b64encode(generate_key(kid).secret).decode()}"


def test_rotate_with_the_environment_variable(runner: CliRunner, env: dict[str, str], specs: Path) -> None:
    """With AUTHBRIDGE_ENCRYPTION_KEYS, rotate moves every secret to the first key; then the old key can go."""
    old, new = _entry("old1"), _entry("new2")
    first = {**env, "AUTHBRIDGE_ENCRYPTION_KEYS": old}
    invoke(runner, first, "integrations", "apply", str(specs))
    with_store(first, _add_secret_parameter)

    both = {**env, "AUTHBRIDGE_ENCRYPTION_KEYS": f"{new},{old}"}
    rotated = invoke(runner, both, "encryption", "rotate")
    assert rotated.exit_code == 0 and rotated.stderr == "active key: new2; re-encrypted 2 secret(s)\n"
    assert old.split(":")[1] not in rotated.output and new.split(":")[1] not in rotated.output

    only_new = {**env, "AUTHBRIDGE_ENCRYPTION_KEYS": new}
    assert with_store(only_new, _secrets) == (SECRET, {"serverName": "prod", "apiSecret": "param-secret-CLI-77"}, 0)
    assert invoke(runner, only_new, "integrations", "show", "acme").exit_code == 0
    wrong = invoke(runner, {**env, "AUTHBRIDGE_ENCRYPTION_KEYS": old}, "integrations", "list")
    assert_one_line_error(wrong, "'new2', which is not in the key ring")
    assert wrong.exit_code == 3


def test_generate_key(runner: CliRunner, env: dict[str, str]) -> None:
    """``generate-key`` prints one ``kid:base64`` entry that the settings accept."""
    result = invoke(runner, env, "encryption", "generate-key")
    entry = result.stdout.strip()
    kid, _, secret = entry.partition(":")
    assert kid.startswith("k") and len(base64.b64decode(secret)) == 32
    assert invoke(runner, {**env, "AUTHBRIDGE_ENCRYPTION_KEYS": entry}, "info").exit_code == 0


def test_info(runner: CliRunner, env: dict[str, str], specs: Path, tmp_path: Path) -> None:
    """``info`` prints the redirect URI built from the public URL, and the settings in use."""
    public = {**env, "AUTHBRIDGE_PUBLIC_URL": "https://auth.example.com/"}
    invoke(runner, public, "integrations", "apply", str(specs))
    plain = invoke(runner, public, "info")
    assert plain.exit_code == 0
    assert "redirect_uri:           https://auth.example.com/oauth/callback" in plain.stdout.splitlines()
    data = json.loads(invoke(runner, public, "info", "--json").stdout)
    assert data["redirect_uri"] == "https://auth.example.com/oauth/callback"
    assert data["public_url"] == "https://auth.example.com"
    assert data["data_dir"] == str(tmp_path / "data")
    assert data["key_ring"] == str(tmp_path / "data" / "master.key")
    assert data["integrations"] == 2 and data["database_ok"] is True
    assert data["database"] == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'authbridge.db'}"


def test_info_hides_the_database_password(runner: CliRunner, env: dict[str, str], db_url: str) -> None:
    """``info`` shows the database URL with any password hidden (both backends)."""
    data = json.loads(invoke(runner, {**env, "AUTHBRIDGE_DATABASE_URL": db_url}, "info", "--json").stdout)
    assert data["database_ok"] is True
    assert data["database"].split("://")[0] in {"sqlite+aiosqlite", "postgresql+asyncpg"}


def test_version_and_help(runner: CliRunner, env: dict[str, str]) -> None:
    """``--version`` prints the version; no arguments prints the help."""
    assert invoke(runner, env, "--version").stdout.strip() == "0.1.0"
    assert "integrations" in invoke(runner, env).output


@pytest.mark.parametrize(
    ("args", "extra", "fragments", "code"),
    [
        (["integrations", "list"], {"AUTHBRIDGE_PORT": "eighty"}, ["AUTHBRIDGE_PORT", "1 to 65535"], 2),
        (["info"], {"AUTHBRIDGE_DATABASE_URL": "mysql://x/y"}, ["AUTHBRIDGE_DATABASE_URL"], 2),
        (["info"], {"AUTHBRIDGE_ENCRYPTION_KEYS": "nonsense"}, ["AUTHBRIDGE_ENCRYPTION_KEYS", "kid:base64"], 2),
        (
            ["info"],
            {"AUTHBRIDGE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"},
            ["cannot migrate the database", "ConnectionRefusedError"],
            1,
        ),
        (["integrations", "show", "nope"], {}, ["no integration with key 'nope'"], 1),
        (["integrations", "export", "nope"], {}, ["no integration with key 'nope'"], 1),
        (["integrations", "apply", "missing.yaml"], {}, ["missing.yaml does not exist"], 2),
        (["integrations", "validate", "missing.yaml"], {}, ["missing.yaml does not exist"], 2),
        (["api-keys", "revoke", "nobody"], {}, ["no active API key"], 1),
    ],
)
def test_errors_are_one_line(
    runner: CliRunner, env: dict[str, str], args: list[str], extra: dict[str, str], fragments: list[str], code: int
) -> None:
    """Bad settings, unknown keys, missing files and unreachable databases end in one ``error:`` line."""
    result = invoke(runner, {**env, **extra}, *args)
    assert_one_line_error(result, *fragments)
    assert result.exit_code == code


def test_wrong_key_file_is_one_line(runner: CliRunner, env: dict[str, str], specs: Path, tmp_path: Path) -> None:
    """A key file that does not fit the stored data ends in one line with the key-ring exit code."""
    invoke(runner, env, "integrations", "apply", str(specs))
    key_file = tmp_path / "data" / "master.key"
    key_file.unlink()
    result = invoke(runner, env, "integrations", "list")
    assert_one_line_error(result, "which is not in the key ring")
    assert result.exit_code == 3
    key_file.chmod(0o644)  # the regenerated file, opened up
    assert_one_line_error(invoke(runner, env, "integrations", "list"), "chmod 600")


# -- the real server --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _authbridge() -> str:
    return str(Path(sys.executable).parent / "authbridge")


def _server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")}
    return {**base, "AUTHBRIDGE_DATA_DIR": str(data_dir), **extra}


def test_run_serves_health_and_openapi(tmp_path: Path) -> None:
    """``authbridge run`` serves /health and /openapi.json, keeps the key file 0600, and redacts its access log."""
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as err:
        server = subprocess.Popen(
            [_authbridge(), "run", "--port", str(port)],
            env=_server_env(tmp_path / "data"),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            status = None
            while time.monotonic() < deadline:
                assert server.poll() is None, log.read_text()
                try:
                    status = httpx.get(f"{base}/health", timeout=2).status_code
                except httpx.TransportError:
                    status = None
                if status == 200:
                    break
                time.sleep(0.2)
            assert status == 200, log.read_text()
            schema = httpx.get(f"{base}/openapi.json", timeout=5).json()
            assert schema["info"]["title"] == "AuthBridge" and "/integrations" in schema["paths"]
            key_file = tmp_path / "data" / "master.key"
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            query = {"code": "AUTHCODE-RUN-1", "state": "STATE-RUN-2"}
            assert httpx.get(f"{base}/health", params=query, timeout=5).status_code == 200
        finally:
            server.terminate()
            server.wait(timeout=15)
    text = log.read_text()
    assert "OAuth redirect URI to register with providers: http://127.0.0.1:8000/oauth/callback" in text
    assert "GET /health?code=***&state=***" in text
    assert "AUTHCODE-RUN-1" not in text and "STATE-RUN-2" not in text
    assert key_file.read_text().splitlines()[-1].split(":", 1)[1] not in text


def test_run_refuses_a_foreign_key_ring(runner: CliRunner, env: dict[str, str], specs: Path, tmp_path: Path) -> None:
    """``authbridge run`` on data encrypted under another key ring exits non-zero with one line."""
    invoke(runner, env, "integrations", "apply", str(specs))
    result = subprocess.run(
        [_authbridge(), "run", "--port", str(_free_port())],
        env=_server_env(tmp_path / "data", AUTHBRIDGE_ENCRYPTION_KEYS=_entry("other")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: stored secrets were encrypted with key"), result.stderr


def test_validate_and_apply_refuse_an_alias_bomb(runner: CliRunner, env: dict[str, str], tmp_path: Path) -> None:
    """``validate`` and ``apply`` refuse a YAML alias bomb at once, naming the file, the line and the reason."""
    from tests.spec.test_loader import alias_bomb

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    for command in ("validate", "apply"):
        result = invoke(runner, env, "integrations", command, str(bomb))
        assert result.exit_code == 1
        assert f"{bomb}: line 5: not valid YAML: aliases (*name) are not allowed in a spec" in result.stderr
    assert with_store(env, lambda s: s.integrations.list()) == []
