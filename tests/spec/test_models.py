"""Tests of the spec models: every block's fields, defaults, normalisation and secret masking.

Whole-spec validation (every problem at once, clean paths) is tested in ``test_validate.py``.
"""

from __future__ import annotations

import re
import typing
from datetime import timedelta

import pydantic
import pytest

from authbridge.spec import (
    SECRET_MASK,
    ApiTokenAuth,
    BasicAuth,
    CustomTokenAuth,
    Integration,
    NoneAuth,
    OAuth2Auth,
    Parameter,
    RefreshPolicy,
    RequestSpec,
    TokenPlacement,
    TokenResponse,
)
from authbridge.spec.models import (
    CallbackSpec,
    ExpiresAt,
    ExpiresIn,
    Hooks,
    RefreshRequest,
    TestRequest,
)

SECRET = "Sup3r-S3cret-Value-42"


def integration(**fields: typing.Any) -> Integration:
    return Integration.model_validate({"key": "acme", "name": "Acme", **fields})


def oauth2(**fields: typing.Any) -> OAuth2Auth:
    auth = integration(auth={"type": "oauth2", **fields}).auth
    assert isinstance(auth, OAuth2Auth)
    return auth


# Integration


def test_minimal_integration_has_defaults_for_every_block() -> None:
    """Only key and name are required; every other block has its documented default."""
    spec = integration()
    assert spec.parameters == []
    assert spec.auth == NoneAuth()
    assert spec.token == TokenPlacement(in_="header", name="Authorization", template="Bearer {token}")
    assert spec.request == RequestSpec()
    assert spec.refresh.window == timedelta(minutes=30)
    assert spec.refresh.min_ttl == timedelta(minutes=5)
    assert spec.refresh.on_status == [401, 403]
    assert spec.refresh.request is None
    assert spec.test is None


@pytest.mark.parametrize("key", ["acme", "Acme2", "a", "X" * 64, "123"])
def test_key_accepts_letters_and_digits(key: str) -> None:
    """A key of 1 to 64 letters and digits is accepted."""
    assert integration(key=key).key == key


@pytest.mark.parametrize("key", ["", "ac-me", "ac_me", "acme.io", "ac me", "acmé", "X" * 65, "acme\n"])
def test_key_rejects_anything_else(key: str) -> None:
    """Dashes, underscores, dots, spaces, non-ASCII letters, a trailing newline and over-long keys are refused."""
    with pytest.raises(pydantic.ValidationError, match="only letters and digits"):
        integration(key=key)


@pytest.mark.parametrize("name", ["", "x" * 201])
def test_name_is_between_1_and_200_characters(name: str) -> None:
    """The display name cannot be empty or longer than 200 characters."""
    with pytest.raises(pydantic.ValidationError, match=r"name\n  String should have at (least 1|most 200) character"):
        integration(name=name)


def test_models_are_frozen() -> None:
    """A loaded spec cannot be changed in place."""
    spec = integration()
    with pytest.raises(pydantic.ValidationError, match="Instance is frozen"):
        spec.key = "other"  # type: ignore[misc]


def test_unknown_fields_are_rejected_in_every_block() -> None:
    """Every block forbids fields it does not define."""
    for model in (Parameter, TokenPlacement, RequestSpec, RefreshPolicy, TokenResponse, Hooks, CallbackSpec):
        with pytest.raises(pydantic.ValidationError, match="extra"):
            model.model_validate({"name": "p", "bogus": 1} if model is Parameter else {"bogus": 1})


def test_parameter_lookup_by_name() -> None:
    """``Integration.parameter`` finds a declared parameter or returns None."""
    spec = integration(parameters=[{"name": "serverName"}])
    assert spec.parameter("serverName") == Parameter(name="serverName")
    assert spec.parameter("other") is None


def test_parameters_must_have_unique_names() -> None:
    """Declaring a parameter twice is an error naming it."""
    with pytest.raises(pydantic.ValidationError, match="'host' is declared twice"):
        integration(parameters=[{"name": "host"}, {"name": "host"}])


# Parameters


def test_parameter_has_every_documented_field() -> None:
    """A parameter takes required, secret, default, pattern, enum, format, description, example, hidden, label."""
    param = Parameter.model_validate(
        {
            "name": "region",
            "label": "Region",
            "description": "Where your data lives",
            "required": True,
            "default": "eu",
            "pattern": "^[a-z]+$",
            "enum": ["eu", "us"],
            "format": "hostname",
            "example": "eu",
            "hidden": True,
        }
    )
    assert (param.required, param.secret, param.hidden) == (True, False, True)
    assert (param.default, param.pattern, param.enum, param.format) == ("eu", "^[a-z]+$", ["eu", "us"], "hostname")
    assert (param.label, param.description, param.example) == ("Region", "Where your data lives", "eu")


def test_parameter_defaults() -> None:
    """A bare parameter is optional, not secret, visible, without constraints."""
    param = Parameter(name="x")
    assert (param.required, param.secret, param.hidden) == (False, False, False)
    assert (param.default, param.pattern, param.enum, param.format) == (None, None, None, None)


@pytest.mark.parametrize("fmt", ["hostname", "url", "uuid", "email"])
def test_parameter_formats(fmt: str) -> None:
    """The four formats are accepted."""
    assert Parameter.model_validate({"name": "x", "format": fmt}).format == fmt


def test_parameter_rejects_unknown_format() -> None:
    """Any other format is refused."""
    with pytest.raises(pydantic.ValidationError, match="hostname"):
        Parameter.model_validate({"name": "x", "format": "ipv4"})


@pytest.mark.parametrize("name", ["9lives", "server-name", "a.b", "", "x y", "x\n"])
def test_parameter_name_must_be_an_identifier(name: str) -> None:
    """A parameter name must be usable as ``{name}`` in a template."""
    with pytest.raises(pydantic.ValidationError, match="letters, digits and '_'"):
        Parameter(name=name)


@pytest.mark.parametrize("name", ["token", "refresh_token", "client_id", "client_secret", "credentials"])
def test_parameter_name_cannot_shadow_a_builtin(name: str) -> None:
    """Template built-in names cannot be declared as parameters."""
    with pytest.raises(pydantic.ValidationError, match="built-in template name"):
        Parameter(name=name)


def test_parameter_pattern_must_compile() -> None:
    """A pattern that is not a regular expression is refused with the reason."""
    with pytest.raises(pydantic.ValidationError, match="not a valid regular expression"):
        Parameter(name="x", pattern="([a-z]")


def test_parameter_enum_cannot_be_empty() -> None:
    """An empty enum would accept nothing."""
    with pytest.raises(pydantic.ValidationError, match="at least one value"):
        Parameter(name="x", enum=[])


def test_secret_parameter_cannot_have_a_default() -> None:
    """A secret's default would sit in the spec in clear, so it is refused."""
    with pytest.raises(pydantic.ValidationError, match="cannot have a default"):
        Parameter.model_validate({"name": "x", "secret": True, "default": SECRET})


def test_parameter_values_written_as_whole_numbers_become_text() -> None:
    """YAML's ``443`` is taken as the text "443" in default, example and enum."""
    param = Parameter.model_validate({"name": "port", "default": 443, "example": 8443, "enum": [443, 8443]})
    assert (param.default, param.example, param.enum) == ("443", "8443", ["443", "8443"])


@pytest.mark.parametrize("value", [True, 1.5])
def test_parameter_values_refuse_booleans_and_floats(value: object) -> None:
    """YAML's ``yes`` and ``1.10`` would change meaning as text, so quotes are asked for."""
    with pytest.raises(pydantic.ValidationError, match="put it in quotes"):
        Parameter.model_validate({"name": "x", "default": value})


# Auth


@pytest.mark.parametrize(
    ("auth_type", "model"),
    [
        ("oauth2", OAuth2Auth),
        ("custom_token", CustomTokenAuth),
        ("api_token", ApiTokenAuth),
        ("basic", BasicAuth),
        ("none", NoneAuth),
    ],
)
def test_auth_is_discriminated_by_type(auth_type: str, model: type[pydantic.BaseModel]) -> None:
    """``auth.type`` picks the model of the auth block."""
    assert type(integration(auth={"type": auth_type}).auth) is model


def test_auth_rejects_an_unknown_type() -> None:
    """An auth type outside the known ones is refused."""
    with pytest.raises(pydantic.ValidationError, match="Input tag 'saml' found using 'type' does not match"):
        integration(auth={"type": "saml"})


@pytest.mark.parametrize("grant", ["authorization_code", "client_credentials", "password"])
def test_oauth2_grant_types(grant: str) -> None:
    """The three OAuth 2.0 grants are accepted; authorization_code is the default."""
    assert oauth2(grant_type=grant).grant_type == grant
    assert oauth2().grant_type == "authorization_code"


def test_oauth2_rejects_other_grants() -> None:
    """Implicit and other grants are refused."""
    with pytest.raises(pydantic.ValidationError, match=re.escape("auth.oauth2.grant_type")):
        oauth2(grant_type="implicit")


def test_oauth2_fields_and_defaults() -> None:
    """OAuth 2.0 carries the token request fields with RFC-minded defaults."""
    auth = oauth2()
    assert (auth.token_method, auth.token_body, auth.client_auth) == ("POST", "form", "header")
    assert (auth.pkce, auth.refresh_token, auth.scope_separator) == (True, True, " ")
    assert auth.token_headers == auth.token_params == auth.authorize_params == {}
    assert auth.scopes == []
    assert auth.callback == CallbackSpec(capture=[])
    assert auth.hooks == Hooks()
    assert auth.token_response == TokenResponse()


def test_oauth2_accepts_every_field() -> None:
    """Every field of DESIGN.md's oauth2 example is read."""
    auth = oauth2(
        grant_type="authorization_code",
        authorization_url="https://x.example/authorize",
        issuer="https://x.example",
        authorize_params={"prompt": "consent"},
        token_url="https://x.example/token",
        token_method="GET",
        token_body="json",
        token_headers={"Accept": "application/json"},
        token_params={"audience": "api"},
        revoke_url="https://x.example/revoke",
        scopes=["read", "write"],
        scope_separator=",",
        client_id="abc",
        client_secret="xyz",
        client_auth="both",
        pkce=False,
        refresh_token=False,
        token_response={"access_token": ["a", "b.c"], "body": "form"},
        callback={"capture": ["realmId"]},
        hooks={"test": "acme.hooks:test"},
    )
    assert auth.token_method == "GET"
    assert auth.token_response.access_token == ["a", "b.c"]
    assert auth.callback.capture == ["realmId"]
    assert auth.hooks.test == "acme.hooks:test"
    assert auth.client_secret is not None and auth.client_secret.get_secret_value() == "xyz"


@pytest.mark.parametrize(("written", "stored"), [("get", "GET"), ("Post", "POST"), ("POST", "POST")])
def test_token_method_is_normalised_to_upper_case(written: str, stored: str) -> None:
    """Lower- and mixed-case GET and POST are accepted and stored in upper case."""
    assert oauth2(token_method=written).token_method == stored
    custom = integration(auth={"type": "custom_token", "token_method": written}).auth
    assert isinstance(custom, CustomTokenAuth) and custom.token_method == stored


@pytest.mark.parametrize("method", ["PUT", "GTE", "", 1])
def test_token_method_is_get_or_post(method: object) -> None:
    """Any other method is refused."""
    with pytest.raises(pydantic.ValidationError, match=re.escape("auth.oauth2.token_method")):
        oauth2(token_method=method)


def test_scopes_may_be_one_space_separated_string() -> None:
    """``scopes: "read write"`` is read as two scopes."""
    assert oauth2(scopes="read write").scopes == ["read", "write"]


def test_templated_fields_take_a_list_of_alternatives() -> None:
    """A templated field may list alternatives, kept in order."""
    assert oauth2(token_url=["https://{a}.x.example/t", "https://x.example/t"]).token_url == [
        "https://{a}.x.example/t",
        "https://x.example/t",
    ]


@pytest.mark.parametrize("value", [5, [], [5], {"a": "b"}, True])
def test_templated_fields_reject_other_values(value: object) -> None:
    """A template must be a string or a non-empty list of strings."""
    with pytest.raises(pydantic.ValidationError, match=r"template string|cannot be empty"):
        oauth2(token_url=value)


def test_custom_token_has_ttl_and_token_request_fields() -> None:
    """Custom token reads the token request fields and a fixed ``ttl`` duration."""
    auth = integration(
        auth={"type": "custom_token", "token_url": "https://x.example/login", "token_body": "json", "ttl": "1h"}
    ).auth
    assert isinstance(auth, CustomTokenAuth)
    assert (auth.token_body, auth.ttl) == ("json", timedelta(hours=1))


@pytest.mark.parametrize("auth_type", ["api_token", "basic", "none"])
def test_static_auth_types_refuse_token_request_fields(auth_type: str) -> None:
    """API token, basic and none have no token request."""
    with pytest.raises(pydantic.ValidationError, match="extra"):
        integration(auth={"type": auth_type, "token_url": "https://x.example/t"})


@pytest.mark.parametrize("hook", ["module:function", "a.b.c:fn_1", "_m:_f"])
def test_hooks_accept_module_colon_function(hook: str) -> None:
    """A hook is written ``module.path:function``."""
    assert Hooks(test=hook).test == hook


@pytest.mark.parametrize("hook", ["module", "module.function", "a:b:c", "a-b:c", "a:b()", "a:b\n", ":f"])
def test_hooks_reject_other_shapes(hook: str) -> None:
    """Anything that is not ``module.path:function`` is refused."""
    with pytest.raises(pydantic.ValidationError, match=r"module\.path:function"):
        Hooks(test=hook)


# Token response


def test_token_response_defaults_follow_rfc_6749() -> None:
    """By default the token is at access_token and the lifetime at expires_in, in seconds."""
    response = TokenResponse()
    assert response.access_token == ["access_token"]
    assert response.refresh_token == ["refresh_token"]
    assert response.expires_in == ExpiresIn(path="expires_in", unit="s")
    assert response.expires_at is None
    assert response.body == "json"


def test_token_response_shorthands() -> None:
    """A single path stands for a list of one, and ``expires_in: path`` for ``{path: path}``."""
    response = TokenResponse.model_validate(
        {"access_token": "data.token", "expires_in": "data.ttl", "expires_at": "data.exp", "default_ttl": "2h"}
    )
    assert response.access_token == ["data.token"]
    assert response.expires_in == ExpiresIn(path="data.ttl")
    assert response.expires_at == ExpiresAt(path="data.exp", format="unix")
    assert response.default_ttl == timedelta(hours=2)


def test_token_response_expiry_forms() -> None:
    """``expires_in`` takes a unit, ``expires_at`` a format, and ``expires_in: null`` turns it off."""
    response = TokenResponse.model_validate(
        {"expires_in": {"path": "ttl", "unit": "ms"}, "expires_at": {"path": "exp", "format": "iso8601"}}
    )
    assert response.expires_in == ExpiresIn(path="ttl", unit="ms")
    assert response.expires_at == ExpiresAt(path="exp", format="iso8601")
    assert TokenResponse.model_validate({"expires_in": None}).expires_in is None


def test_token_response_needs_an_access_token_path() -> None:
    """An empty list of access token paths is refused."""
    with pytest.raises(pydantic.ValidationError, match="access_token\n  List should have at least 1 item"):
        TokenResponse.model_validate({"access_token": []})


# Token placement, request, refresh, test


def test_token_placement_reads_in_by_its_yaml_name() -> None:
    """``in`` is the YAML name of the placement's location."""
    placement = TokenPlacement.model_validate({"in": "query", "name": "api_key", "template": "{token}"})
    assert (placement.in_, placement.name, placement.template) == ("query", "api_key", "{token}")
    assert placement.model_dump(by_alias=True)["in"] == "query"


@pytest.mark.parametrize("name", ["X Key", "X:Key", "", "X-Key\r\n"])
def test_token_placement_header_name_must_be_a_token(name: str) -> None:
    """A header name with spaces, colons or line breaks is refused."""
    with pytest.raises(pydantic.ValidationError, match="header name"):
        TokenPlacement.model_validate({"in": "header", "name": name})


def test_token_placement_query_name_is_free_text() -> None:
    """A query parameter name is percent-encoded later, so it need not be a header token."""
    assert TokenPlacement.model_validate({"in": "query", "name": "api key"}).name == "api key"


def test_request_block() -> None:
    """The request block holds a base URL (or alternatives), headers and query parameters."""
    request = RequestSpec.model_validate(
        {
            "base_url": ["{credentials.instance_url}/api", "https://x.example"],
            "headers": {"A": "b"},
            "query": {"q": "1"},
        }
    )
    assert request.base_url == ["{credentials.instance_url}/api", "https://x.example"]
    assert (request.headers, request.query) == ({"A": "b"}, {"q": "1"})


def test_refresh_policy_reads_durations_and_its_request() -> None:
    """Window and min_ttl are durations; the optional request describes a different refresh call."""
    policy = RefreshPolicy.model_validate(
        {
            "window": "10m",
            "min_ttl": 90,
            "on_status": [401],
            "request": {"url": "https://x.example/refresh", "method": "get", "params": {"grant_type": "refresh"}},
        }
    )
    assert (policy.window, policy.min_ttl, policy.on_status) == (timedelta(minutes=10), timedelta(seconds=90), [401])
    assert policy.request == RefreshRequest(
        url="https://x.example/refresh", method="GET", params={"grant_type": "refresh"}
    )


def test_refresh_request_url_defaults_to_none() -> None:
    """A refresh request without a URL is accepted: it goes to ``auth.token_url``."""
    policy = RefreshPolicy.model_validate({"request": {"method": "POST", "params": {"grant_type": "refresh_token"}}})
    assert policy.request is not None and policy.request.url is None


@pytest.mark.parametrize("status", [200, 399, 600])
def test_refresh_on_status_is_an_error_status(status: int) -> None:
    """Refreshing on a non-error status makes no sense."""
    with pytest.raises(
        pydantic.ValidationError, match=r"on_status\.0\n  Input should be (greater|less) than or equal to"
    ):
        RefreshPolicy.model_validate({"on_status": [status]})


def test_test_request_defaults_and_shorthands() -> None:
    """The test request defaults to GET / expecting 200; one status stands for a list of one."""
    assert TestRequest() == TestRequest(method="GET", path="/", expect_status=[200])
    parsed = TestRequest.model_validate({"method": "head", "path": "/me", "expect_status": 204})
    assert (parsed.method, parsed.path, parsed.expect_status) == ("HEAD", "/me", [204])


@pytest.mark.parametrize("fields", [{"method": "FETCH"}, {"expect_status": [99]}, {"expect_status": []}])
def test_test_request_rejects_bad_values(fields: dict[str, object]) -> None:
    """Unknown methods, impossible statuses and an empty status list are refused."""
    with pytest.raises(pydantic.ValidationError, match="1 validation error for TestRequest"):
        TestRequest.model_validate(fields)


# Secrets


def spec_with_secret() -> Integration:
    return integration(
        auth={
            "type": "oauth2",
            "authorization_url": "https://x.example/a",
            "token_url": "https://x.example/t",
            "client_id": "abc",
            "client_secret": SECRET,
        }
    )


def test_repr_and_str_never_show_the_client_secret() -> None:
    """The client secret does not appear in the repr or str of the integration or its auth block."""
    spec = spec_with_secret()
    for text in (repr(spec), str(spec), repr(spec.auth), str(spec.auth)):
        assert SECRET not in text


def test_model_dump_masks_the_client_secret() -> None:
    """Dumping, as JSON or as Python data, shows the mask instead of the secret."""
    spec = spec_with_secret()
    assert spec.model_dump(mode="json")["auth"]["client_secret"] == SECRET_MASK
    assert spec.model_dump()["auth"]["client_secret"] == SECRET_MASK
    assert SECRET not in spec.model_dump_json()


def test_client_secret_property_gives_the_clear_value() -> None:
    """``Integration.client_secret`` is the one way to the clear secret; it is None without one."""
    assert spec_with_secret().client_secret == SECRET
    assert integration().client_secret is None
    assert integration(auth={"type": "oauth2"}).client_secret is None


def test_validation_errors_never_show_the_client_secret() -> None:
    """A pydantic error elsewhere in the spec does not echo the secret's value."""
    with pytest.raises(pydantic.ValidationError, match=re.escape("auth.oauth2.token_method")) as info:
        integration(auth={"type": "oauth2", "client_secret": SECRET, "token_method": "PUT"})
    assert SECRET not in str(info.value)
