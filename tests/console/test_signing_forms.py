"""The console for the signing auth types: the integration form's sections and the connect form's inputs
(an optional session token). The signatures themselves: tests/auth/test_signing.py, tests/proxy/test_signing_e2e.py."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from authbridge.console.spec_form import form_to_data, spec_to_form
from authbridge.spec import dump_spec, load_spec, validate_spec
from tests.conftest import ClientFactory, portal, sqlite_env, store_of
from tests.console.test_account_pages import _page_text, _post, _signed_in

AWS = """\
key: awscon
name: AWS console
auth: {type: aws_sigv4, region: eu-west-1, service: sts}
request: {base_url: "https://sts.eu-west-1.amazonaws.com"}
"""
HMAC = """\
key: hmaccon
name: HMAC console
auth:
  type: hmac_signature
  string_to_sign: "{method}\\n{path}"
  signature: {name: Authorization, template: "HMAC {key_id}:{signature}"}
request: {base_url: "https://api.partner.example"}
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false")


@pytest.mark.parametrize(
    ("spec", "key", "inputs"),
    [
        (AWS, "awscon", {"access_key_id": "text", "secret_access_key": "password", "session_token": "password"}),
        (HMAC, "hmaccon", {"key_id": "text", "secret_key": "password"}),
    ],
)
def test_connect_form_asks_for_the_keys(
    make_client: ClientFactory, env: dict[str, str], spec: str, key: str, inputs: dict[str, str]
) -> None:
    """The connect form asks for the key id and secret (a password field); the session token is optional."""
    client = _signed_in(make_client, env, spec)
    page = _page_text(client.get(f"/console/accounts/new?integration={key}"))
    for name, kind in inputs.items():
        field = page.split(f'name="cred.{name}"')[0].rsplit("<input", 1)[1]
        assert f'type="{kind}"' in field
    if key == "awscon":
        token_input = page.split('name="cred.session_token"')[1].split(">")[0]
        assert "required" not in token_input and "(optional)" in page


def test_connecting_without_a_session_token_and_secrets_stay_hidden(
    make_client: ClientFactory, env: dict[str, str]
) -> None:
    """An AWS account connects with an empty session token; the secret key is on no page afterwards."""
    client = _signed_in(make_client, env, AWS)
    secret = "console/SECRET+value-9d1"
    response = _post(
        client,
        "/console/accounts/new",
        integration="awscon",
        name="Prod",
        **{"cred.access_key_id": "AKIDCONSOLE", "cred.secret_access_key": secret, "cred.session_token": ""},
    )
    assert response.status_code == 303, response.text
    account = client.get(response.headers["location"])
    assert account.status_code == 200 and secret not in account.text

    async def stored() -> typing.Any:
        connections = await store_of(client).connections.list()
        return await store_of(client).credentials.load(connections[0].id)

    creds = portal(client).call(stored)
    assert creds.inputs == {"access_key_id": "AKIDCONSOLE", "secret_access_key": secret}
    missing = _post(client, "/console/accounts/new", integration="awscon", name="X", **{"cred.access_key_id": "A"})
    assert missing.status_code == 422 and "is required" in _page_text(missing)


@pytest.mark.parametrize("text", [AWS, HMAC])
def test_integration_form_round_trips(text: str) -> None:
    """Spec → the console form's values → spec is the same (every field of the type is on the form)."""
    spec = load_spec(text)
    values = spec_to_form(spec)
    data, problems, _rows = form_to_data(values, keep_secret=False)
    assert problems == []
    assert dump_spec(validate_spec(data)) == dump_spec(spec)


def test_integration_form_page_shows_the_sections(make_client: ClientFactory, env: dict[str, str]) -> None:
    """The new-integration page has a section per signing type with its fields."""
    client = _signed_in(make_client, env)
    page = client.get("/console/integrations/new").text
    for name in (
        "aws_sigv4.region",
        "aws_sigv4.payload",
        "hmac_signature.string_to_sign",
        "hmac_signature.signature.in",
    ):
        assert f'name="{name}"' in page
