"""The JWT auth styles' pieces: spec rules, plugins, private_key_jwt requests, console fields, the encrypted key."""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import text

from authbridge.auth import AuthContext, plugin_for, revoke_requests, token_request
from authbridge.console.spec_form import form_to_data, spec_to_form, stored_secrets
from authbridge.errors import ConflictError, ParameterError, SpecError, TokenEndpointError
from authbridge.spec import Integration, check_parameter_values, load_spec, validate_spec
from authbridge.spec.destinations import move_problems
from authbridge.store import Store

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_EC = ec.generate_private_key(ec.SECP256R1())
PEM = _EC.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC = ECKey.import_key(_EC.public_key())


def keyed(**auth: typing.Any) -> dict[str, typing.Any]:
    return {
        "key": "acme",
        "name": "Acme",
        "auth": {
            "type": "oauth2",
            "grant_type": "client_credentials",
            "token_url": "https://acme.example/oauth/token",
            "revoke_url": "https://acme.example/oauth/revoke",
            "client_id": "cid",
            "client_auth": "private_key_jwt",
            "client_private_key": PEM,
            "client_assertion_alg": "ES256",
            **auth,
        },
    }


def problems(data: dict[str, typing.Any]) -> list[str]:
    with pytest.raises(SpecError) as caught:
        validate_spec(data)
    return [str(item) for item in caught.value.errors]


# -- private_key_jwt --------------------------------------------------------------------------------


def test_private_key_jwt_signs_for_each_endpoint_with_the_kid() -> None:
    """The token and revocation requests carry an ES256 assertion for their own URL, with the kid; no secret."""
    spec = Integration.model_validate(keyed(client_key_id="{kid}"))
    ctx = AuthContext(spec, parameters={"kid": "k-9"}, clock=lambda: NOW, access_token="at-1")
    request = token_request(ctx, grant_type="client_credentials")
    fields = dict(parse_qsl(request.content.decode()))
    assert fields["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "client_secret" not in fields and "authorization" not in request.headers
    token = jwt.decode(fields["client_assertion"], PUBLIC, algorithms=["ES256"])
    assert token.header == {"typ": "JWT", "kid": "k-9", "alg": "ES256"}
    assert token.claims["iss"] == token.claims["sub"] == "cid"
    assert token.claims["aud"] == "https://acme.example/oauth/token"
    assert token.claims["exp"] - token.claims["iat"] == 300
    revoke = revoke_requests(ctx)[0].request
    revoked = dict(parse_qsl(revoke.content.decode()))
    assert jwt.decode(revoked["client_assertion"], PUBLIC, algorithms=["ES256"]).claims["aud"].endswith("/revoke")
    assert PEM.splitlines()[1] not in repr(spec) and PEM.splitlines()[1] not in spec.model_dump_json()


def test_the_client_key_may_come_from_a_secret_parameter() -> None:
    """``client_private_key: "{clientKey}"`` takes the parameter; without a value the request says so."""
    data = keyed(client_private_key="{clientKey}")
    data["parameters"] = [{"name": "clientKey", "secret": True}]
    spec = validate_spec(data)
    assert spec.key_parameters == {"clientKey"}
    assert check_parameter_values(spec, {"clientKey": "x" * 5000})["clientKey"] == "x" * 5000
    ctx = AuthContext(spec, parameters={"clientKey": PEM}, clock=lambda: NOW)
    fields = dict(parse_qsl(token_request(ctx, grant_type="client_credentials").content.decode()))
    assert jwt.decode(fields["client_assertion"], PUBLIC, algorithms=["ES256"]).claims["sub"] == "cid"
    assert PEM in AuthContext(spec, parameters={"clientKey": PEM}).secrets()  # a secret parameter's value
    with pytest.raises(ParameterError, match=r"auth.client_private_key: has no value; private_key_jwt signs with it"):
        token_request(AuthContext(spec, clock=lambda: NOW), grant_type="client_credentials")


def test_private_key_jwt_and_the_key_go_together() -> None:
    """private_key_jwt without a key, and a key with another method, are refused at load."""
    without = keyed()
    del without["auth"]["client_private_key"]
    assert any("needs auth.client_private_key" in p for p in problems(without))
    assert any("used only with client_auth: private_key_jwt" in p for p in problems(keyed(client_auth="header")))
    assert Integration.model_validate(keyed()).key_parameters == frozenset()


def test_the_client_key_is_a_secret_of_every_request() -> None:
    """The key is among the values masked in anything shown."""
    spec = Integration.model_validate(keyed())
    assert PEM in AuthContext(spec).secrets()


# -- spec rules of the JWT types ------------------------------------------------------------------


def jwt_spec(**auth: typing.Any) -> dict[str, typing.Any]:
    return {
        "key": "asc",
        "name": "ASC",
        "parameters": [{"name": "private_key", "secret": True}, {"name": "team"}],
        "auth": {"type": "jwt", "alg": "ES256", "claims": {"iss": "{team}"}, **auth},
    }


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"key": "literal-key-text"}, "auth.key: must reference a secret parameter, such as {private_key}"),
        ({"key": "{team}"}, "auth.key: {team} holds a key: declare the parameter with secret: true"),
        ({"claims": {"nested": [{"x": "{nope}"}]}}, "auth.claims.nested.0.x: references {nope}"),
        ({"header": {"x5u": "{nope}"}}, "auth.header.x5u: references {nope}"),
        ({"kid": "{nope}"}, "auth.kid: references {nope}"),
    ],
)
def test_jwt_templates_are_checked_at_load(auth: dict[str, typing.Any], message: str) -> None:
    """Keys come from secret parameters; every string of the header and claims references declared names."""
    assert any(p.startswith(message) for p in problems(jwt_spec(**auth))), problems(jwt_spec(**auth))


def test_the_default_key_needs_its_parameter() -> None:
    data = jwt_spec()
    data["parameters"] = [{"name": "team"}]
    assert "auth.key: references {private_key}: declare a secret parameter private_key" in problems(data)


def test_jwt_bearer_needs_a_token_url_and_checks_its_assertion() -> None:
    data = {
        "key": "g",
        "name": "G",
        "parameters": [{"name": "sa", "secret": True}],
        "auth": {"type": "jwt_bearer", "assertion": {"key": "{sa}", "claims": {"sub": "{who}"}}},
    }
    found = problems(data)
    assert "auth.token_url: is required for jwt_bearer" in found
    assert any(p.startswith("auth.assertion.claims.sub: references {who}") for p in found)


def test_the_token_template_must_carry_the_token() -> None:
    assert "token.template: must contain {token}, where the token goes" in problems(
        {**jwt_spec(), "token": {"template": "Bearer x"}}
    )


def test_key_parameters_of_each_type() -> None:
    asc = validate_spec(jwt_spec())
    assert asc.key_parameters == {"private_key"}
    gsa = validate_spec(
        {
            "key": "g",
            "name": "G",
            "parameters": [{"name": "sa", "secret": True}],
            "auth": {"type": "jwt_bearer", "token_url": "https://t.example/token", "assertion": {"key": "{sa}"}},
        }
    )
    assert gsa.key_parameters == {"sa"}
    with pytest.raises(ParameterError, match="is longer than 16384 characters"):
        check_parameter_values(gsa, {"sa": "x" * 16_385})


def test_a_jwt_bearer_token_url_moving_host_is_a_move_of_connection_secrets() -> None:
    """The assertion (signed with the account's key) goes to token_url: moving it with accounts is refused."""
    base = {
        "key": "g",
        "name": "G",
        "parameters": [{"name": "sa", "secret": True}],
        "auth": {"type": "jwt_bearer", "token_url": "https://t.example/token", "assertion": {"key": "{sa}"}},
    }
    moved = json.loads(json.dumps(base))
    moved["auth"]["token_url"] = "https://elsewhere.example/token"
    found = move_problems(validate_spec(base), validate_spec(moved), client_secret_kept=False, connections=2)
    assert [item.path for item in found] == ["auth.token_url"]


# -- plugins --------------------------------------------------------------------------------------


def test_the_plugins_describe_themselves() -> None:
    gsa = validate_spec(
        {
            "key": "g",
            "name": "G",
            "parameters": [{"name": "sa", "secret": True}],
            "auth": {
                "type": "jwt_bearer",
                "token_url": "https://t.example/token",
                "scopes": "a b",
                "token_params": {"extra": "{username}"},
                "assertion": {"key": "{sa}"},
            },
        }
    )
    bearer = plugin_for(gsa.auth)
    assert bearer.scopes(gsa) == ["a", "b"] and bearer.refreshable(gsa) and not bearer.redirects(gsa)
    assert [i.name for i in bearer.inputs(gsa)] == ["username"]
    assert bearer.style(gsa) == "jwt_bearer" and bearer.client_app(gsa) is None
    asc = validate_spec(jwt_spec())
    signed = plugin_for(asc.auth)
    assert signed.refreshable(asc) and signed.inputs(asc) == () and not signed.has_hooks()
    assert {f.path for f in signed.form_fields} >= {"auth.alg", "auth.key", "auth.claims", "auth.ttl"}
    with pytest.raises(TypeError):
        bearer.begin(AuthContext(asc))
    with pytest.raises(TypeError):
        next(signed.refresh(AuthContext(gsa)).flow)


def test_a_self_signed_jwt_flow_sends_nothing() -> None:
    asc = validate_spec(jwt_spec())
    exchange = plugin_for(asc.auth).refresh(AuthContext(asc, parameters={"private_key": PEM, "team": "t"}))
    with pytest.raises(StopIteration) as done:
        next(exchange.flow)
    tokens = done.value.value
    assert jwt.decode(tokens.access_token, PUBLIC, algorithms=["ES256"]).claims["iss"] == "t"
    assert tokens.expires_at is not None and tokens.refresh_token is None


# -- the console's form ---------------------------------------------------------------------------


def test_console_json_fields_and_the_key_kept_only_for_its_method() -> None:
    """Claims are JSON objects; the stored client key is kept (mask) while private_key_jwt is chosen, else dropped."""
    spec = Integration.model_validate(keyed())
    assert stored_secrets(spec) == {"auth.client_private_key"} and stored_secrets(None) == frozenset()
    values = spec_to_form(spec)
    assert values["oauth2.client_private_key"] == "" and values["oauth2.client_auth"] == "private_key_jwt"
    data, found, _rows = form_to_data(values, keep_secret=stored_secrets(spec))
    assert data["auth"]["client_private_key"] == "********" and not found
    assert "client_secret" not in data["auth"]
    values["oauth2.client_auth"] = "header"
    data, found, _rows = form_to_data(values, keep_secret=stored_secrets(spec))
    assert "client_private_key" not in data["auth"] and "client_key_id" not in data["auth"]
    asc = validate_spec(jwt_spec(header={"cty": "x"}))
    form = spec_to_form(asc)
    assert json.loads(form["jwt.claims"]) == {"iss": "{team}"} and json.loads(form["jwt.header"]) == {"cty": "x"}
    for bad, message in (("{not json", "is not valid JSON"), ("[1]", "must be a JSON object")):
        data, found, _rows = form_to_data({**form, "jwt.claims": bad}, keep_secret=False)
        assert any(item.path == "auth.claims" and message in item.message for item in found)
    data, found, _rows = form_to_data({**form, "jwt.header": "  "}, keep_secret=False)
    assert "header" not in data["auth"] and validate_spec(data).auth == asc.auth.model_copy(update={"header": {}})


# -- the encrypted column ---------------------------------------------------------------------------


async def test_the_client_key_is_encrypted_at_rest_and_kept_by_the_mask(store: Store) -> None:
    """Its own encrypted column, never in the spec JSON; the mask keeps it; the mask cannot create one."""
    spec = load_spec(json.dumps(keyed()))
    await store.integrations.save(spec)
    async with store.engine.connect() as conn:
        row = (await conn.execute(text("SELECT spec, client_private_key FROM integrations"))).one()
    body = PEM.splitlines()[1]
    assert body not in str(row[0]) and row[1].startswith("v1.") and body not in row[1]
    masked = load_spec(json.dumps(keyed(client_private_key="********", client_key_id="k2")))
    record, created = await store.integrations.save(masked)
    assert not created and record.spec.client_private_key == PEM
    with pytest.raises(ConflictError, match=r"auth.client_private_key: give the secret itself"):
        await store.integrations.save(load_spec(json.dumps({**keyed(client_private_key="********"), "key": "new"})))
    header = load_spec(json.dumps(keyed(client_auth="header", client_private_key=None, client_secret="s")))
    await store.integrations.save(header)
    with pytest.raises(ConflictError, match=r"auth.client_private_key: none is stored"):
        await store.integrations.save(masked)


def test_a_client_assertion_echoed_by_the_token_endpoint_is_masked() -> None:
    """An error description quoting the signed assertion is shown without it."""
    spec = Integration.model_validate(keyed())
    ctx = AuthContext(spec, clock=lambda: NOW)
    flow = plugin_for(spec.auth).begin(ctx).flow  # type: ignore[union-attr]
    request = next(flow)
    assertion = dict(parse_qsl(request.content.decode()))["client_assertion"]
    answer = httpx.Response(400, json={"error": "invalid_client", "error_description": f"bad {assertion}"})
    with pytest.raises(TokenEndpointError) as caught:
        flow.send(answer)
    assert "eyJ" not in str(caught.value) and "invalid_client" in str(caught.value)  # not even its start
