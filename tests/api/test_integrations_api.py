"""The management API for integrations, on SQLite and PostgreSQL: CRUD, write-only secrets, import, API keys.

The CLI drives the same broker methods: see tests/test_cli.py.
"""

from __future__ import annotations

import copy
import typing

import pytest

from tests.conftest import ClientFactory, create_api_key, portal, store_of

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

SECRET = "cs-API-TEST-5a1f0c9e77"

SPEC: dict[str, typing.Any] = {
    "key": "acme",
    "name": "Acme CRM",
    "parameters": [{"name": "serverName", "required": True}, {"name": "apiSecret", "secret": True}],
    "auth": {
        "type": "oauth2",
        "authorization_url": "https://{serverName}.acme.example/authorize",
        "token_url": "https://{serverName}.acme.example/token",
        "client_id": "abc",
        "client_secret": SECRET,
        "scopes": ["read"],
    },
    "request": {"base_url": "https://{serverName}.acme.example/api"},
}

YAML_TWO = """\
key: one
name: One
auth: {type: api_token}
---
key: two
name: Two
auth:
  type: oauth2
  grant_type: client_credentials
  token_url: https://two.example/token
  client_id: id2
  client_secret: yaml-secret-2
"""

YAML_BAD = """\
key: good
name: Good
---
key: bad-key
name: Bad
auth:
  type: custom_token
  token_url: https://x.example/{tenant}/token
  token_method: PSOT
"""


def spec(**changes: typing.Any) -> dict[str, typing.Any]:
    """A deep copy of SPEC with top-level fields replaced."""
    return {**copy.deepcopy(SPEC), **changes}


def stored_secret(client: TestClient, key: str) -> str | None:
    """The client secret the running app's store holds for ``key`` (decrypted)."""
    store = store_of(client)
    return portal(client).call(store.integrations.get, key).spec.client_secret


def test_create_get_list_delete(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """An integration is created, read, listed and deleted, with the secret masked in every answer."""
    created = api_client.post("/integrations", json=SPEC, headers=api_headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["auth"]["client_secret"] == "********"
    assert body["redirect_uri"] == "http://127.0.0.1:8000/oauth/callback"
    assert body["parameters"][1] == {"name": "apiSecret", "secret": True}
    assert created.headers["etag"] == '"v1"'

    got = api_client.get("/integrations/acme", headers=api_headers)
    assert got.status_code == 200
    assert got.json() == body
    listed = api_client.get("/integrations", headers=api_headers)
    assert listed.json() == {"items": [body]}
    for response in (created, got, listed):
        assert SECRET not in response.text
    assert stored_secret(api_client, "acme") == SECRET

    deleted = api_client.delete("/integrations/acme", headers=api_headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert api_client.get("/integrations/acme", headers=api_headers).status_code == 404
    assert api_client.get("/integrations", headers=api_headers).json() == {"items": []}


def test_put_with_the_mask_keeps_the_secret(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """A PUT of the spec as read back (secret ``********``) changes the rest and keeps the stored secret."""
    api_client.post("/integrations", json=SPEC, headers=api_headers)
    read_back = api_client.get("/integrations/acme", headers=api_headers).json()
    read_back["name"] = "Acme 2"
    put = api_client.put("/integrations/acme", json=read_back, headers=api_headers)
    assert put.status_code == 200, put.text
    assert put.json()["name"] == "Acme 2" and put.json()["auth"]["client_secret"] == "********"
    assert put.headers["etag"] == '"v2"'
    assert stored_secret(api_client, "acme") == SECRET

    changed = spec(auth={**SPEC["auth"], "client_secret": "a-new-secret-value"})
    assert api_client.put("/integrations/acme", json=changed, headers=api_headers).status_code == 200
    assert stored_secret(api_client, "acme") == "a-new-secret-value"


def test_put_creates_and_checks_the_key(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """PUT creates a missing integration (201), takes the key from the URL, and refuses a different body key."""
    body = spec()
    del body["key"]
    created = api_client.put("/integrations/acme", json=body, headers=api_headers)
    assert created.status_code == 201 and created.json()["key"] == "acme"
    other = api_client.put("/integrations/acme", json=spec(key="other", name=""), headers=api_headers)
    assert other.status_code == 422
    paths = {e["path"]: e["message"] for e in other.json()["error"]["errors"]}
    assert paths["key"] == "must be 'acme', the key in the URL"
    assert "name" in paths  # the other problems are listed too


def test_put_with_the_mask_cannot_create(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """A new integration cannot be created with ``********`` as its secret."""
    masked = spec(auth={**SPEC["auth"], "client_secret": "********"})
    response = api_client.put("/integrations/acme", json=masked, headers=api_headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


def test_conflicts_and_not_found(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """Creating an existing key and deleting an integration with connections are 409; unknown keys are 404."""
    assert api_client.post("/integrations", json=SPEC, headers=api_headers).status_code == 201
    again = api_client.post("/integrations", json=SPEC, headers=api_headers)
    assert again.status_code == 409
    assert again.json() == {
        "error": {"code": "conflict", "message": "an integration with key 'acme' exists already", "side": "authbridge"}
    }
    store = store_of(api_client)
    portal(api_client).call(
        lambda: store.connections.create(integration_key="acme", name="DEV", parameters={"serverName": "dev"})
    )
    busy = api_client.delete("/integrations/acme", headers=api_headers)
    assert busy.status_code == 409
    assert "1 connected account" in busy.json()["error"]["message"]

    for method in ("GET", "DELETE"):
        missing = api_client.request(method, "/integrations/nope", headers=api_headers)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "integration_not_found"


def test_invalid_spec_lists_every_problem(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """An invalid spec is refused with 422 and one item per problem, each with its field path."""
    bad = spec(key="bad-key")
    bad["auth"] = {**SPEC["auth"], "token_url": "https://x.example/{tenant}", "token_method": "GTE"}
    response = api_client.post("/integrations", json=bad, headers=api_headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_spec" and error["side"] == "authbridge"
    assert error["message"] == "3 problems in the integration spec"
    assert {e["path"] for e in error["errors"]} == {"key", "auth.token_url", "auth.token_method"}
    assert SECRET not in response.text
    assert api_client.get("/integrations", headers=api_headers).json() == {"items": []}


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b'{"key": "acme", "auth": {"client_secret": "half-sent-secret"', "application/json", "not valid JSON"),
        (b"[1, 2, 3]", "application/json", "the spec must be a mapping"),
        (b"", "application/json", "Field required"),
        (b'"just-a-string-secret"', "application/json", "the spec must be a mapping"),
    ],
)
def test_bad_json_bodies(
    api_client: TestClient, api_headers: dict[str, str], content: bytes, content_type: str, message: str
) -> None:
    """Malformed bodies get the error shape, a 422, and never an echo of what was sent."""
    response = api_client.post("/integrations", content=content, headers={**api_headers, "content-type": content_type})
    assert response.status_code == 422
    error = response.json()["error"]
    assert set(error) == {"code", "message", "side", "errors"}
    assert message in error["errors"][0]["message"]
    assert "secret" not in response.text


def test_import_yaml(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """``POST /integrations:import`` applies several YAML documents, and reports created and updated keys."""
    first = api_client.post("/integrations:import", content=YAML_TWO, headers=api_headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"created": ["one", "two"], "updated": []}
    assert stored_secret(api_client, "two") == "yaml-secret-2"
    again = api_client.post(
        "/integrations:import", content=YAML_TWO.replace("yaml-secret-2", "'********'"), headers=api_headers
    )
    assert again.json() == {"created": [], "updated": ["one", "two"]}
    assert stored_secret(api_client, "two") == "yaml-secret-2"


def test_import_saves_nothing_unless_all_are_valid(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """An import with one bad document is refused whole, listing every problem with its path and line."""
    response = api_client.post("/integrations:import", content=YAML_BAD, headers=api_headers)
    assert response.status_code == 422
    errors = response.json()["error"]["errors"]
    assert {(e["path"], e["line"]) for e in errors} == {
        ("key", 4),
        ("auth.token_url", 8),
        ("auth.token_method", 9),
    }
    assert api_client.get("/integrations", headers=api_headers).json() == {"items": []}


def test_import_refuses_a_masked_secret_for_a_new_key_before_saving(
    api_client: TestClient, api_headers: dict[str, str]
) -> None:
    """A masked secret for an integration that does not exist yet fails the import before anything is saved."""
    response = api_client.post(
        "/integrations:import", content=YAML_TWO.replace("yaml-secret-2", "'********'"), headers=api_headers
    )
    assert response.status_code == 422
    assert response.json()["error"]["errors"] == [
        {"path": "two.auth.client_secret", "message": "give the secret itself, not ********"}
    ]
    assert api_client.get("/integrations", headers=api_headers).json() == {"items": []}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("key: [", "not valid YAML"),
        ("key: one\nname: One\n---\nkey: one\nname: Again\n", "'one' appears more than once"),
        ("", "the file holds no integration"),
        (b"\xff\xfe", "the body must be UTF-8 text"),
    ],
)
def test_import_errors(api_client: TestClient, api_headers: dict[str, str], content: str | bytes, message: str) -> None:
    """Unparseable, duplicate, empty or non-UTF-8 imports are refused with 422."""
    response = api_client.post("/integrations:import", content=content, headers=api_headers)
    assert response.status_code == 422
    assert message in response.json()["error"]["errors"][0]["message"]


def test_hooks_need_an_allowed_module(make_client: ClientFactory, app_env: dict[str, str]) -> None:
    """A hook is refused with 422 unless its module is in AUTHBRIDGE_HOOK_MODULES."""
    hooked = spec(auth={**SPEC["auth"], "hooks": {"test": "myhooks.acme:check"}})
    strict = make_client(app_env)
    headers = {"Authorization": f"Bearer {create_api_key(strict)}"}
    refused = strict.post("/integrations", json=hooked, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["errors"] == [
        {
            "path": "auth.hooks.test",
            "message": "hook module of 'myhooks.acme:check' is not allowed on this server (AUTHBRIDGE_HOOK_MODULES)",
        }
    ]
    imported = strict.post(
        "/integrations:import",
        content="key: a\nname: A\nauth: {type: api_token, hooks: {test: 'x:f'}}\n",
        headers=headers,
    )
    assert imported.status_code == 422

    lenient = make_client({**app_env, "AUTHBRIDGE_HOOK_MODULES": "other, myhooks"})
    headers = {"Authorization": f"Bearer {create_api_key(lenient)}"}
    accepted = lenient.post("/integrations", json=hooked, headers=headers)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["auth"]["hooks"] == {"test": "myhooks.acme:check"}


def test_every_management_route_needs_a_key(api_client: TestClient) -> None:
    """Missing, wrong, malformed and revoked keys all get the same 401 body; both headers are accepted."""
    key = create_api_key(api_client, "ci")
    store = store_of(api_client)
    revoked = create_api_key(api_client, "old")
    portal(api_client).call(store.api_keys.revoke, "old")
    routes = [
        ("GET", "/integrations"),
        ("POST", "/integrations"),
        ("GET", "/integrations/acme"),
        ("PUT", "/integrations/acme"),
        ("DELETE", "/integrations/acme"),
        ("POST", "/integrations:import"),
    ]
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer ab_" + "x" * 43},
        {"Authorization": "Bearer not-even-our-format"},
        {"Authorization": f"Basic {key}"},
        {"Authorization": f"Bearer {revoked}"},
        {"X-AuthBridge-Key": key[:-1]},
        {"X-AuthBridge-Key": revoked},
    ]
    bodies = set()
    for method, path in routes:
        for headers in bad_headers:
            response = api_client.request(method, path, headers=headers, json=SPEC)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
            bodies.add(response.text)
    assert bodies == {'{"error":{"code":"unauthorized","message":"missing or invalid API key","side":"authbridge"}}'}
    assert api_client.get("/integrations", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert api_client.get("/integrations", headers={"authorization": f"bearer  {key} "}).status_code == 200
    assert api_client.get("/integrations", headers={"X-AuthBridge-Key": key}).status_code == 200


def test_openapi_and_docs(api_client: TestClient) -> None:
    """The OpenAPI document lists every route with the spec schema and both key headers; /docs serves."""
    schema = api_client.get("/openapi.json").json()
    assert schema["info"]["title"] == "AuthBridge"
    paths = schema["paths"]
    assert set(paths["/integrations"]) == {"get", "post"}
    assert set(paths["/integrations/{key}"]) == {"get", "put", "delete"}
    assert "post" in paths["/integrations:import"] and "get" in paths["/health"]
    body = paths["/integrations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "auth" in body["properties"]
    assert set(schema["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    assert "security" not in paths["/health"]["get"]
    docs = api_client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_unknown_routes_and_methods_use_the_error_shape(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """404 and 405 from the router come in the same error shape."""
    missing = api_client.get("/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = api_client.patch("/integrations/acme", headers=api_headers)
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_oversized_import_is_refused(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """An import body over 1 MiB (AUTHBRIDGE_MAX_BODY's default) is refused with 413 without being parsed."""
    huge = "# " + "x" * (1024 * 1024) + "\nkey: a\nname: A\n"
    response = api_client.post("/integrations:import", content=huge, headers=api_headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_unexpected_errors_use_the_error_shape(make_client: ClientFactory, app_env: dict[str, str]) -> None:
    """An unexpected exception becomes a 500 in the error shape that does not repeat the exception's text."""
    client = make_client(app_env, raise_server_exceptions=False)

    @client.app.get("/boom")  # type: ignore[attr-defined, untyped-decorator]
    async def boom() -> None:
        raise RuntimeError(f"internal detail {SECRET}")

    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert SECRET not in response.text and "internal detail" not in response.text


def test_import_refuses_an_alias_bomb(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """A YAML alias bomb sent as application/yaml is refused with 422 naming the alias, and nothing is saved."""
    from tests.spec.test_loader import alias_bomb

    headers = {**api_headers, "Content-Type": "application/yaml"}
    response = api_client.post("/integrations:import", content=alias_bomb(), headers=headers)
    assert response.status_code == 422
    [error] = response.json()["error"]["errors"]
    assert "aliases (*name) are not allowed" in error["message"] and error["line"] == 5
    assert api_client.get("/integrations", headers=api_headers).json() == {"items": []}


def test_parameter_values_are_capped_by_the_setting(make_client: ClientFactory, app_env: dict[str, str]) -> None:
    """AUTHBRIDGE_MAX_PARAMETER_LENGTH reaches ``POST /connections``: a longer value is a 422 and nothing is stored."""
    client = make_client({**app_env, "AUTHBRIDGE_MAX_PARAMETER_LENGTH": "16"})
    headers = {"Authorization": f"Bearer {create_api_key(client)}"}
    spec = {"key": "capped", "name": "Capped", "parameters": [{"name": "team"}], "auth": {"type": "api_token"}}
    assert client.put("/integrations/capped", json=spec, headers=headers).status_code == 201
    body = {"integration": "capped", "name": "C", "credentials": {"token": "tok-1234"}}
    response = client.post("/connections", json={**body, "parameters": {"team": "x" * 17}}, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["errors"] == [
        {"path": "parameters.team", "message": "is longer than 16 characters"}
    ]
    assert client.get("/connections", headers=headers).json()["items"] == []
    created = client.post("/connections", json={**body, "parameters": {"team": "x" * 16}}, headers=headers)
    assert created.status_code == 201, created.text
