"""Specs that real providers need, validated and run end to end against the real test OAuth server process.

Each case is saved through the API (so validation accepts it), then a connection is made and used:
``username``/``password`` parameters outside ``basic``, ``refresh.request`` without ``url``,
``{token}`` in ``test.path`` and ``test.headers``, booleans and numbers in ``token_params``, and fields
captured from the OAuth callback used in ``token_url`` (Lightspeed's ``domain_prefix``).
"""

from __future__ import annotations

import json
import typing

import pytest

from tests.api.test_connections_e2e import (
    PUBLIC_URL,
    add_integration,
    auto_approve,
    callback,
    code_spec,
    connect,
    connections,
    custom_spec,
    database_dump,
    run_test,
    show,
    token_of,
)
from tests.conftest import ClientFactory, create_api_key
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

Json = dict[str, typing.Any]


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    """A started AuthBridge on a fresh database (both backends) that may call the loopback server over http."""
    return make_client({**app_env, "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true", "AUTHBRIDGE_PUBLIC_URL": PUBLIC_URL})


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    """An API key of ``client``."""
    return {"Authorization": f"Bearer {create_api_key(client)}"}


def refused(client: TestClient, headers: dict[str, str], spec: Json) -> list[Json]:
    """Save ``spec``, expecting 422; the errors."""
    response = client.post("/integrations", json=spec, headers=headers)
    assert response.status_code == 422, response.text
    errors: list[Json] = response.json()["error"]["errors"]
    return errors


# -- username and password parameters -------------------------------------------------------------


def test_username_and_password_parameters_of_a_custom_token(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """Parameters named username and password are what {username}/{password} mean; the password one is secret."""
    spec = custom_spec(oauth)
    spec["parameters"] = [{"name": "username", "required": True}, {"name": "password", "required": True}]
    add_integration(client, headers, spec)
    saved = client.get("/integrations/custom", headers=headers).json()
    assert [p.get("secret", False) for p in saved["parameters"]] == [False, True]

    created = connect(client, headers, "custom", parameters={"username": oauth.USERNAME, "password": oauth.PASSWORD})
    assert created["status"] == "active"
    assert oauth.stats()["token_calls"]["custom"] == 1
    assert run_test(client, headers, created["id"])["ok"] is True
    assert oauth.PASSWORD not in database_dump(client)
    assert oauth.PASSWORD not in json.dumps(show(client, headers, created["id"]))


@pytest.mark.parametrize(
    ("auth", "where"),
    [({"type": "basic"}, "auth type basic"), ({"type": "oauth2", "grant_type": "password"}, "the password grant")],
)
def test_username_and_password_parameters_are_refused_where_they_are_credentials(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, auth: Json, where: str
) -> None:
    """With basic auth or the password grant the user enters them when connecting: a parameter would shadow them."""
    spec: Json = {"key": "b", "name": "B", "parameters": [{"name": "password"}], "auth": auth}
    if auth["type"] == "oauth2":
        spec["auth"] = {**auth, "token_url": oauth.token_url}
    errors = refused(client, headers, spec)
    assert {
        "path": "parameters.0.name",
        "message": f"with {where}, {{password}} is the credential entered when connecting; choose another name",
    } in errors


# -- refresh.request without url ------------------------------------------------------------------


def test_a_refresh_request_without_url_goes_to_the_token_url(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """``refresh.request`` with params but no url is sent to ``auth.token_url``, and the refresh works."""
    spec = code_spec(oauth)
    spec["refresh"] = {"request": {"params": {"grant_type": "refresh_token", "refresh_token": "{refresh_token}"}}}
    add_integration(client, headers, spec)
    created = connect(client, headers)
    assert callback(client, auto_approve(oauth, created["authorize_url"])).status_code == 200
    before = token_of(client, headers, created["id"])
    response = client.post(f"/connections/{created['id']}/refresh", headers=headers)
    assert response.status_code == 200, response.text
    assert oauth.stats()["token_calls"]["refresh_token"] == 1
    assert token_of(client, headers, created["id"]) != before


# -- {token} in the test request -----------------------------------------------------------------


def test_token_in_the_test_path_and_headers(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """The test request may carry {token} in a header (here the only place it goes) and in its path."""
    spec = code_spec(oauth)
    spec["token"] = {"in": "query", "name": "unused", "template": "{token}"}
    spec["test"] = {"path": "/api/me", "headers": {"Authorization": "Bearer {token}"}}
    add_integration(client, headers, spec)
    created = connect(client, headers)
    assert callback(client, auto_approve(oauth, created["authorize_url"])).status_code == 200
    report = run_test(client, headers, created["id"])
    assert report["ok"] is True and report["status"] == 200, report

    spec["test"] = {"path": "/api/echo/{token}", "expect_status": 200}
    assert client.put("/integrations/idp", json=spec, headers=headers).status_code == 200
    report = run_test(client, headers, created["id"])
    assert report["ok"] is True, report
    token = token_of(client, headers, created["id"])
    assert token not in report["detail"] and "/api/echo/***" in report["detail"]


# -- booleans and numbers in token_params --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "sent"),
    [
        ("json", {"remember": True, "ttl": 3600, "ratio": 0.5, "user": "alice"}),
        ("form", "remember=true&ttl=3600&ratio=0.5&user=alice"),
    ],
)
def test_booleans_and_numbers_in_token_params(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, body: str, sent: object
) -> None:
    """JSON types in a JSON body, their text in a form. The echo endpoint answers with the body it got,
    which this integration takes as its token, so the token shows what was sent."""
    spec = {
        "key": "typed",
        "name": "Typed",
        "auth": {
            "type": "custom_token",
            "token_url": oauth.echo_url,
            "token_body": body,
            "token_params": {"remember": True, "ttl": 3600, "ratio": 0.5, "user": "alice"},
            "token_response": {"access_token": "body", "expires_in": None, "default_ttl": "1h"},
        },
        "request": {"base_url": oauth.base_url},
    }
    add_integration(client, headers, spec)
    assert client.get("/integrations/typed", headers=headers).json()["auth"]["token_params"]["remember"] is True
    created = connect(client, headers, "typed")
    token = token_of(client, headers, created["id"])
    assert (json.loads(token) if body == "json" else token) == sent


# -- callback captures in token_url --------------------------------------------------------------


def capture_spec(oauth: OAuthServer, token_url: str, *, public: bool = False, **callback: typing.Any) -> Json:
    spec = code_spec(oauth, token_url=token_url, callback={"capture": ["domain_prefix"], **callback})
    del spec["auth"]["revoke_url"]
    if public:
        # A public client: no client secret goes to the token URL, so a pattern may bound its whole host
        # (the test server is reached as 127.0.0.1, which no fixed domain can pin).
        spec["auth"]["client_id"] = oauth.PUBLIC_ID
        del spec["auth"]["client_secret"]
    return spec


def test_a_captured_host_receiving_the_client_secret_must_be_pinned(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """With a client secret, a capture may pick a subdomain of a fixed domain, never the whole host."""
    whole = capture_spec(oauth, "https://{credentials.domain_prefix}/oauth/token", patterns={"domain_prefix": "[a-z]+"})
    refused = client.post("/integrations", json=whole, headers=headers)
    assert refused.status_code == 422
    assert "{credentials.domain_prefix} decides its host" in refused.text
    pinned = capture_spec(
        oauth, "https://{credentials.domain_prefix}.vendhq.example/token", patterns={"domain_prefix": "[a-z0-9-]+"}
    )
    add_integration(client, headers, pinned)


def test_a_captured_field_in_the_token_url_host(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """Lightspeed's case: the host of the token endpoint is only known from the redirect.

    The token request goes to the URL rendered with the captured value (the code reaches the server;
    a public client, see capture_spec), the value is stored, and the refresh renders the same URL again.
    """
    port = oauth.base_url.rsplit(":", 1)[1]
    spec = capture_spec(
        oauth,
        f"http://{{credentials.domain_prefix}}:{port}/oauth/token",
        public=True,
        patterns={"domain_prefix": r"127\.0\.0\.1"},
    )
    add_integration(client, headers, spec)
    created = connect(client, headers)
    page = callback(client, {**auto_approve(oauth, created["authorize_url"]), "domain_prefix": "127.0.0.1"})
    assert page.status_code == 200, page.text
    assert show(client, headers, created["id"])["status"] == "active"
    assert oauth.stats()["token_calls"]["authorization_code"] == 1
    response = client.post(f"/connections/{created['id']}/refresh", headers=headers)
    assert response.status_code == 200, response.text
    assert oauth.stats()["token_calls"]["refresh_token"] == 1


@pytest.mark.parametrize("value", ["evil.example", "127.0.0.1.evil.example", "a..b", "127.0.0.1:1"])
def test_a_captured_host_that_breaks_its_pattern_gets_no_token_request(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, value: str
) -> None:
    """An attacker who edits the redirect cannot send the code and client secret elsewhere."""
    port = oauth.base_url.rsplit(":", 1)[1]
    spec = capture_spec(
        oauth,
        f"http://{{credentials.domain_prefix}}:{port}/oauth/token",
        public=True,
        patterns={"domain_prefix": r"127\.0\.0\.1"},
    )
    add_integration(client, headers, spec)
    created = connect(client, headers)
    page = callback(client, {**auto_approve(oauth, created["authorize_url"]), "domain_prefix": value})
    assert page.status_code == 400, page.text
    shown = show(client, headers, created["id"])
    assert shown["status"] == "error"
    assert "the callback's domain_prefix does not match" in shown["last_error"]
    assert oauth.stats()["token_calls"]["authorization_code"] == 0


def test_a_captured_field_in_the_token_url_path(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """In the path a captured value needs no pattern: it is percent-encoded and cannot move the host."""
    add_integration(client, headers, capture_spec(oauth, f"{oauth.base_url}/{{credentials.domain_prefix}}/token"))
    created = connect(client, headers)
    page = callback(client, {**auto_approve(oauth, created["authorize_url"]), "domain_prefix": "oauth"})
    assert page.status_code == 200, page.text
    assert oauth.stats()["token_calls"]["authorization_code"] == 1

    again = connect(client, headers)
    page = callback(client, {**auto_approve(oauth, again["authorize_url"]), "domain_prefix": ".."})
    assert page.status_code == 400, page.text
    assert "cannot be a URL path segment" in show(client, headers, again["id"])["last_error"]
    assert oauth.stats()["token_calls"]["authorization_code"] == 1


@pytest.mark.parametrize(
    ("token_url", "callback_block", "message"),
    [
        ("https://{credentials.domain_prefix}.example.com/token", {}, "constrain it in auth.callback.patterns"),
        ("{credentials.domain_prefix}/token", {"patterns": {"domain_prefix": "https://x"}}, "cannot supply"),
        ("https://x.example:{credentials.domain_prefix}/t", {"patterns": {"domain_prefix": "[0-9]+"}}, "or port"),
    ],
)
def test_a_captured_field_that_could_redirect_the_secret_is_refused_when_saved(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, token_url: str, callback_block: Json, message: str
) -> None:
    """A captured field in the host needs a pattern; it can never be the whole URL or the port."""
    errors = refused(client, headers, capture_spec(oauth, token_url, **callback_block))
    assert any(e["path"] == "auth.token_url" and message in e["message"] for e in errors), errors
    assert connections(client, headers) == []


def test_credentials_that_are_not_captured_stay_out_of_the_token_url(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """Only callback captures exist when the code is exchanged; any other credential field is refused."""
    errors = refused(client, headers, capture_spec(oauth, f"{oauth.base_url}/{{credentials.other}}/token"))
    assert {
        "path": "auth.token_url",
        "message": "references {credentials.other}, but credentials do not exist yet here "
        "(only fields captured from the callback: auth.callback.capture)",
    } in errors
