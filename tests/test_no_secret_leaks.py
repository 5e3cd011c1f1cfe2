"""No secret leaks: every API route, CLI command and error path, with DEBUG logs captured, shows no secret.

The secrets are a client secret, a secret connection parameter, API keys and the key ring's key material.
The one exception is the API key that ``api-keys create`` prints, once, to stdout.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from authbridge.cli import app
from authbridge.store import generate_key
from tests.conftest import ClientFactory, create_api_key, portal, store_of

if typing.TYPE_CHECKING:
    import httpx
    from fastapi.testclient import TestClient

CLIENT_SECRET = "LEAK-client-secret-7c41e9"
NEW_CLIENT_SECRET = "LEAK-rotated-secret-2f80aa"
PARAM_SECRET = "LEAK-param-secret-93bd10"
YAML_SECRET = "LEAK-yaml-secret-5e6f7a"

SPEC: dict[str, typing.Any] = {
    "key": "acme",
    "name": "Acme",
    "parameters": [{"name": "serverName", "required": True}, {"name": "apiSecret", "secret": True}],
    "auth": {
        "type": "oauth2",
        "authorization_url": "https://{serverName}.acme.example/authorize",
        "token_url": "https://{serverName}.acme.example/token",
        "client_id": "abc",
        "client_secret": CLIENT_SECRET,
    },
    "request": {"base_url": "https://{serverName}.acme.example", "headers": {"X-Key": "{apiSecret}"}},
}

IMPORT = f"""\
key: partner
name: Partner
auth:
  type: oauth2
  grant_type: client_credentials
  token_url: https://partner.example/token
  client_id: p
  client_secret: {YAML_SECRET}
"""


class Transcript:
    """Everything a user or an operator could see: response bodies and headers, CLI output."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def response(self, response: httpx.Response) -> httpx.Response:
        self.texts.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    def result(self, result: Result) -> Result:
        self.texts.append(result.stdout + result.stderr)
        return result


def _key_material(data_dir: Path, *entries: str) -> list[str]:
    """The base64 key material of the key file and of key ring entries, in both base64 alphabets."""
    lines = (data_dir / "master.key").read_text().splitlines()
    secrets = [e.split(":", 1)[1] for e in [*lines, *entries] if e and not e.startswith("#")]
    urlsafe = [s.replace("+", "-").replace("/", "_").rstrip("=") for s in secrets]
    return [*secrets, *urlsafe]


def test_no_secret_in_responses_output_or_logs(
    api_client: TestClient,
    app_env: dict[str, str],
    runner: CliRunner,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Across every route, command and error, no secret appears; the created API key appears exactly once."""
    caplog.set_level(logging.DEBUG)
    seen = Transcript()
    key = create_api_key(api_client, "leaks")
    auth = {"Authorization": f"Bearer {key}"}
    store = store_of(api_client)

    # -- the management API, happy paths -------------------------------------------------------
    seen.response(api_client.post("/integrations", json=SPEC, headers=auth))
    portal(api_client).call(
        lambda: store.connections.create(
            integration_key="acme",
            name="PROD",
            parameters={"serverName": "prod", "apiSecret": PARAM_SECRET},
            secret_names={"apiSecret"},
        )
    )
    seen.response(api_client.get("/integrations", headers=auth))
    read_back = seen.response(api_client.get("/integrations/acme", headers={"X-AuthBridge-Key": key})).json()
    seen.response(api_client.put("/integrations/acme", json=read_back, headers=auth))
    rotated = {**SPEC, "auth": {**SPEC["auth"], "client_secret": NEW_CLIENT_SECRET}}
    seen.response(api_client.put("/integrations/acme", json=rotated, headers=auth))
    seen.response(api_client.post("/integrations:import", content=IMPORT, headers=auth))
    seen.response(api_client.get("/health"))
    seen.response(api_client.get("/openapi.json"))
    seen.response(api_client.get("/docs"))

    # -- the management API, errors ------------------------------------------------------------
    seen.response(api_client.post("/integrations", json=SPEC, headers=auth))  # 409
    seen.response(api_client.delete("/integrations/acme", headers=auth))  # 409: it has a connection
    seen.response(api_client.get("/integrations/nope", headers=auth))  # 404
    broken = json.dumps(SPEC)[:-5].encode()
    seen.response(
        api_client.post("/integrations", content=broken, headers={**auth, "content-type": "application/json"})
    )
    invalid = {**SPEC, "key": "bad-key", "auth": {**SPEC["auth"], "token_method": CLIENT_SECRET, "extra": PARAM_SECRET}}
    seen.response(api_client.post("/integrations", json=invalid, headers=auth))
    seen.response(api_client.put("/integrations/other", json=rotated, headers=auth))  # key mismatch
    seen.response(api_client.post("/integrations:import", content=IMPORT.replace("partner", "bad-key"), headers=auth))
    seen.response(api_client.post("/integrations:import", content=f"key: [{YAML_SECRET}", headers=auth))
    hooked = {**SPEC, "auth": {**SPEC["auth"], "hooks": {"test": "evil:f"}}}
    seen.response(api_client.post("/integrations", json=hooked, headers=auth))
    seen.response(api_client.get("/integrations", headers={"Authorization": f"Bearer {key[:-2]}xx"}))
    seen.response(api_client.get("/integrations", headers={"Authorization": f"Bearer {CLIENT_SECRET}"}))
    seen.response(api_client.get("/integrations", headers={"X-AuthBridge-Key": PARAM_SECRET}))

    # -- the CLI on the same database ---------------------------------------------------------
    spec_file = tmp_path / "partner.yaml"
    spec_file.write_text(IMPORT)
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(IMPORT.replace("partner", "bad-key").replace("grant_type: client_credentials", "x: 1"))
    env = app_env
    created = seen.result(runner.invoke(app, ["api-keys", "create", "--name", "cli"], env=env))
    cli_key = created.stdout.strip()
    assert cli_key.startswith("ab_")
    for args in (
        ["integrations", "apply", str(spec_file)],
        ["integrations", "list"],
        ["integrations", "list", "--json"],
        ["integrations", "show", "acme"],
        ["integrations", "show", "acme", "--json"],
        ["integrations", "export", "acme"],
        ["integrations", "export", "partner"],
        ["integrations", "validate", str(bad_file)],
        ["integrations", "delete", "acme"],
        ["api-keys", "list"],
        ["api-keys", "list", "--json"],
        ["api-keys", "revoke", "cli"],
        ["info"],
        ["info", "--json"],
        ["encryption", "rotate"],
        ["integrations", "show", "nope"],
    ):
        result = seen.result(runner.invoke(app, args, env=env))
        assert "Traceback" not in result.output, args
    seen.response(api_client.get("/integrations", headers={"Authorization": f"Bearer {cli_key}"}))  # revoked: 401
    seen.response(api_client.get("/integrations/acme", headers=auth))  # after rotation, served by the running app
    other = f"k9:{base64.b64encode(generate_key('k9').secret).decode()}"
    wrong_ring = {**env, "AUTHBRIDGE_ENCRYPTION_KEYS": other}
    seen.result(runner.invoke(app, ["integrations", "list"], env=wrong_ring))
    seen.result(runner.invoke(app, ["info"], env={**env, "AUTHBRIDGE_ENCRYPTION_KEYS": other[:-8]}))

    # -- nothing secret anywhere ----------------------------------------------------------------
    logs = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    everything = "\n".join([*seen.texts, *logs])
    assert caplog.records, "the flows were expected to log something"
    secrets = [CLIENT_SECRET, NEW_CLIENT_SECRET, PARAM_SECRET, YAML_SECRET, key]
    secrets += _key_material(Path(env["AUTHBRIDGE_DATA_DIR"]), other)
    for secret in secrets:
        assert secret not in everything, secret
    assert everything.count(cli_key) == 1
    assert created.stdout == cli_key + "\n"

    # The secrets were really stored and used: the flows above did not trivially avoid them.
    got = portal(api_client).call(store.integrations.get, "acme")
    assert got.spec.client_secret == NEW_CLIENT_SECRET
    assert portal(api_client).call(store.integrations.get, "partner").spec.client_secret == YAML_SECRET


def test_no_secret_when_the_database_fails(
    make_client: ClientFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database failure mid-request is logged and answered with 503, naming no secret."""
    caplog.set_level(logging.DEBUG)
    db_dir = tmp_path / "db"
    client = make_client(
        {"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data"), "AUTHBRIDGE_DATABASE_URL": f"sqlite:///{db_dir}/a.db"}
    )
    key = create_api_key(client)
    auth = {"Authorization": f"Bearer {key}"}
    assert client.post("/integrations", json=SPEC, headers=auth).status_code == 201
    shutil.rmtree(db_dir)
    portal(client).call(store_of(client).engine.dispose)
    responses = [
        client.get("/integrations", headers=auth),
        client.put("/integrations/acme", json=SPEC, headers=auth),
        client.get("/health"),
    ]
    assert [r.status_code for r in responses] == [503, 503, 503]
    assert any(r.name == "authbridge.api" and "store_error" in r.getMessage() for r in caplog.records)
    everything = "\n".join(
        [*(r.text for r in responses), *(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)]
    )
    for secret in [CLIENT_SECRET, key, *_key_material(tmp_path / "data")]:
        assert secret not in everything
