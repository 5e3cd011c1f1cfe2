"""Tests of whole-spec validation (every problem at once, with clean paths) and of parameter values.

The YAML side (line numbers, several documents) is tested in ``test_loader.py``.
"""

from __future__ import annotations

import re
import typing

import pytest

from authbridge.errors import ErrorItem, ParameterError, SpecError
from authbridge.spec import Integration, check_parameter_values, load_spec, validate_spec

SECRET = "Sup3r-S3cret-Value-42"


def spec(**fields: typing.Any) -> dict[str, typing.Any]:
    return {"key": "acme", "name": "Acme", **fields}


def problems(data: object) -> list[tuple[str, str]]:
    """The (path, message) pairs of the SpecError that validating ``data`` raises."""
    with pytest.raises(SpecError, match=r"^\d+ problems? in the integration spec") as info:
        validate_spec(data)
    return [(item.path, item.message) for item in info.value.errors]


def paths(data: object) -> list[str]:
    return [path for path, _ in problems(data)]


def code_flow(**fields: typing.Any) -> dict[str, typing.Any]:
    return {
        "type": "oauth2",
        "authorization_url": "https://x.example/authorize",
        "token_url": "https://x.example/token",
        "client_id": "abc",
        **fields,
    }


# Every problem at once


FOUR_PROBLEMS = """\
key: ac-me
name: Acme
parameters:
  - name: host
auth:
  type: oauth2
  authorization_url: https://x.example/authorize
  token_url: https://{serverName}.x.example/token
  client_id: abc
  token_method: PSOT
token:
  template: "Bearer abc"
"""


def test_every_problem_is_reported_at_once_with_its_line() -> None:
    """A bad key, an undeclared reference, a bad method and a template without {token} come in one SpecError."""
    with pytest.raises(SpecError, match=re.escape("acme.yaml: 4 problems in the integration spec")) as info:
        load_spec(FOUR_PROBLEMS, source="acme.yaml")
    assert info.value.errors == (
        ErrorItem("key", "must contain only letters and digits (1 to 64 of them)", 1),
        ErrorItem("auth.token_url", "references {serverName}, which is not a declared parameter", 8),
        ErrorItem("auth.token_method", "must be GET or POST", 10),
        ErrorItem("token.template", "must contain {token}, where the token goes", 12),
    )
    message = str(info.value)
    assert message.startswith("acme.yaml: 4 problems in the integration spec:")
    assert "line 8: auth.token_url: references {serverName}, which is not a declared parameter" in message


def test_model_errors_and_cross_field_errors_are_reported_together() -> None:
    """Type errors from the model and reference errors from the checks are listed side by side."""
    found = problems(spec(auth=code_flow(pkce="maybe"), request={"base_url": "https://{nope}.x.example"}))
    assert ("auth.pkce", "must be true or false") in found
    assert ("request.base_url", "references {nope}, which is not a declared parameter") in found


def test_a_valid_spec_returns_the_model() -> None:
    """A valid raw spec becomes an Integration."""
    result = validate_spec(spec(auth=code_flow()))
    assert isinstance(result, Integration) and result.auth.type == "oauth2"


@pytest.mark.parametrize("data", [None, [], "key: acme", 5])
def test_the_spec_must_be_a_mapping(data: object) -> None:
    """A document that is not a mapping is one clear error."""
    assert problems(data) == [("", "the spec must be a mapping (key: value pairs)")]


def test_source_names_the_file_in_the_message() -> None:
    """The ``source`` argument prefixes the summary; ``errors`` stays structured."""
    with pytest.raises(SpecError, match="key: is required") as info:
        validate_spec({"name": "x"}, source="x.yaml")
    assert info.value.source == "x.yaml"
    assert str(info.value) == "x.yaml: 1 problem in the integration spec:\n  key: is required"


# What each auth type needs


@pytest.mark.parametrize(
    ("auth", "missing"),
    [
        ({"type": "oauth2"}, ["authorization_url", "token_url", "client_id"]),
        ({"type": "oauth2", "grant_type": "authorization_code"}, ["authorization_url", "token_url", "client_id"]),
        ({"type": "oauth2", "grant_type": "client_credentials"}, ["token_url", "client_id"]),
        ({"type": "oauth2", "grant_type": "password"}, ["token_url"]),
        ({"type": "custom_token"}, ["token_url"]),
    ],
)
def test_each_grant_needs_its_fields(auth: dict[str, str], missing: list[str]) -> None:
    """What a grant type needs is required, each named with the grant that needs it."""
    found = problems(spec(auth=auth))
    assert [path for path, _ in found] == [f"auth.{name}" for name in missing]
    reason = f"grant_type {auth.get('grant_type', 'authorization_code')}" if auth["type"] == "oauth2" else auth["type"]
    assert all(message == f"is required for {reason}" for _, message in found)


@pytest.mark.parametrize("empty", ["", None])
def test_an_empty_required_field_counts_as_missing(empty: object) -> None:
    """An empty or null value does not satisfy a grant's requirement."""
    assert ("auth.client_id", "is required for grant_type authorization_code") in problems(
        spec(auth=code_flow(client_id=empty))
    )


@pytest.mark.parametrize("auth_type", ["api_token", "basic", "none"])
def test_static_auth_types_need_nothing(auth_type: str) -> None:
    """API token, basic and none validate with their type alone."""
    assert validate_spec(spec(auth={"type": auth_type})).auth.type == auth_type


def test_token_method_accepts_lower_case() -> None:
    """``token_method: get`` is read as GET."""
    auth = validate_spec(spec(auth=code_flow(token_method="get"))).auth
    assert auth.type == "oauth2" and auth.token_method == "GET"


# The token template


@pytest.mark.parametrize(
    "auth",
    [code_flow(), {"type": "custom_token", "token_url": "https://x.example/t"}, {"type": "api_token"}],
    ids=lambda auth: auth["type"],
)
def test_token_template_must_place_the_token(auth: dict[str, str]) -> None:
    """For the auth types that have a token, the template must contain {token}."""
    found = problems(spec(auth=auth, token={"template": "Bearer static"}))
    assert found == [("token.template", "must contain {token}, where the token goes")]


def test_basic_and_none_need_no_token_in_the_template() -> None:
    """Basic places username and password; none places nothing."""
    basic = spec(auth={"type": "basic"}, token={"template": "Basic {base64(username:password)}"})
    assert validate_spec(basic).token.template == "Basic {base64(username:password)}"
    assert validate_spec(spec(token={"in": "query", "name": "v", "template": "1"})).token.name == "v"


def test_basic_templates_cannot_use_the_token() -> None:
    """A basic integration has no token to place."""
    found = problems(spec(auth={"type": "basic"}, token={"template": "Bearer {token}"}))
    assert found == [
        (
            "token.template",
            "references {token}, which is not available in this field (available: {password}, {username})",
        )
    ]


# Unknown fields


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (spec(nmae="x"), "nmae", "is not a known field (did you mean name?)"),
        (spec(zzz=1), "zzz", "is not a known field"),
        (spec(auth=code_flow(tokne_url="x")), "auth.tokne_url", "is not a known field (did you mean token_url?)"),
        (spec(auth=code_flow(scope=["a"])), "auth.scope", "is not a known field (did you mean scopes?)"),
        (
            spec(auth={"type": "custom_token", "token_url": "https://x.example", "ttll": "1h"}),
            "auth.ttll",
            "is not a known field (did you mean ttl?)",
        ),
        (
            spec(auth={"type": "none", "token_url": "https://x.example/t"}),
            "auth.token_url",
            "is not a field of auth type none (it belongs to oauth2, custom_token, jwt_bearer)",
        ),
        (
            spec(auth=code_flow(ttl="1h")),
            "auth.ttl",
            "is not a field of auth type oauth2 (it belongs to custom_token, jwt)",
        ),
        (
            spec(parameters=[{"name": "a", "requird": True}]),
            "parameters.0.requird",
            "is not a known field (did you mean required?)",
        ),
        (spec(token={"tempalte": "{token}"}), "token.tempalte", "is not a known field (did you mean template?)"),
        (spec(token={"where": "query"}), "token.where", "is not a known field"),
        (
            spec(refresh={"request": {"url": "https://x.example/r", "parms": {}}}),
            "refresh.request.parms",
            "is not a known field (did you mean params?)",
        ),
        (
            spec(auth=code_flow(token_response={"acces_token": "a"})),
            "auth.token_response.acces_token",
            "is not a known field (did you mean access_token?)",
        ),
        (spec(test={"expect": 200}), "test.expect", "is not a known field (did you mean expect_status?)"),
    ],
)
def test_unknown_fields_are_errors_with_a_hint(data: dict[str, typing.Any], path: str, message: str) -> None:
    """An unknown field is named with its full path, with a "did you mean" when a known field is close."""
    assert (path, message) in problems(data)


def test_a_misplaced_auth_field_gets_no_template_errors() -> None:
    """A field its auth type does not have is reported once, as unknown, not also as a bad template."""
    assert paths(spec(auth={"type": "api_token", "token_url": "{nope}"})) == ["auth.token_url"]


# Clean paths for bad types


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (
            spec(auth=code_flow(token_url=5)),
            "auth.token_url",
            "must be a template string or a list of template strings",
        ),
        (
            spec(auth=code_flow(token_url=[5])),
            "auth.token_url",
            "must be a template string or a list of template strings",
        ),
        (
            spec(auth=code_flow(authorize_params={"a": 1})),
            "auth.authorize_params.a",
            "must be a template string or a list of template strings",
        ),
        (spec(auth=code_flow(token_headers="x")), "auth.token_headers", "must be a mapping (key: value pairs)"),
        (spec(auth=code_flow(client_secret=5)), "auth.client_secret", "must be a string"),
        (spec(auth=code_flow(scopes=[1])), "auth.scopes.0", "must be a string"),
        (spec(auth=code_flow(pkce="maybe")), "auth.pkce", "must be true or false"),
        (
            spec(auth=code_flow(client_auth="query")),
            "auth.client_auth",
            "must be header, body, both, client_secret_jwt or private_key_jwt",
        ),
        (
            spec(auth=code_flow(token_response={"expires_in": 5})),
            "auth.token_response.expires_in",
            "must be a mapping (key: value pairs)",
        ),
        (
            spec(auth=code_flow(token_response={"expires_at": {"format": "rfc"}})),
            "auth.token_response.expires_at.format",
            "must be unix, unix_ms or iso8601",
        ),
        (
            spec(auth=code_flow(token_response={"access_token": []})),
            "auth.token_response.access_token",
            "cannot be empty",
        ),
        (spec(auth=code_flow(hooks={"test": 5})), "auth.hooks.test", "must be a string"),
        (
            spec(auth={"type": "basic", "hooks": {"test": "x"}}),
            "auth.hooks.test",
            "must be written module.path:function",
        ),
        (
            spec(auth={"type": "custom_token", "token_url": "https://x.example", "ttl": "soon"}),
            "auth.ttl",
            "expected a duration such as 30m, 90s, 1h30m, 250ms or a number of seconds",
        ),
        (
            spec(auth={"type": "oauth3"}),
            "auth.type",
            "must be one of oauth2, custom_token, jwt_bearer, jwt, api_token, basic, none, oauth1, aws_sigv4, "
            "hmac_signature",
        ),
        (
            spec(auth={}),
            "auth.type",
            "is required: one of oauth2, custom_token, jwt_bearer, jwt, api_token, basic, none, oauth1, aws_sigv4, "
            "hmac_signature",
        ),
        (spec(auth=5), "auth", "must be a mapping (key: value pairs)"),
        (spec(parameters={"a": 1}), "parameters", "must be a list"),
        (spec(parameters=[5]), "parameters.0", "must be a mapping (key: value pairs)"),
        (spec(parameters=[{"name": "a", "required": "maybe"}]), "parameters.0.required", "must be true or false"),
        (spec(parameters=[{"label": "x"}]), "parameters.0.name", "is required"),
        (spec(parameters=[{"name": "a", "enum": [True]}]), "parameters.0.enum.0", "must be text: put it in quotes"),
        (spec(token={"in": "body"}), "token.in", "must be header or query"),
        (spec(token={"name": "X Key"}), "token.name", "is not a valid HTTP header name"),
        (spec(token={"template": 5}), "token.template", "must be a string"),
        (spec(request={"headers": [1]}), "request.headers", "must be a mapping (key: value pairs)"),
        (spec(refresh={"window": -5}), "refresh.window", "a duration cannot be negative"),
        (spec(refresh={"on_status": [200]}), "refresh.on_status.0", "must be at least 400"),
        (spec(refresh={"on_status": [600]}), "refresh.on_status.0", "must be at most 599"),
        (spec(refresh={"on_status": ["x"]}), "refresh.on_status.0", "must be a whole number"),
        (
            spec(refresh={"request": {"url": "https://x.example", "method": "PUT"}}),
            "refresh.request.method",
            "must be GET or POST",
        ),
        (spec(test=5), "test", "must be a mapping (key: value pairs)"),
        (spec(test={"method": "FETCH"}), "test.method", "must be GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"),
        (spec(name=""), "name", "cannot be empty"),
        (spec(name="x" * 201), "name", "must be at most 200 characters"),
        ({"name": "x"}, "key", "is required"),
        (spec(key=5), "key", "must be a string"),
    ],
)
def test_bad_types_are_reported_with_a_clean_path(data: dict[str, typing.Any], path: str, message: str) -> None:
    """Every type error names the path as written in the spec, without pydantic internals, and says why."""
    found = problems(data)
    assert (path, message) in found
    for found_path, found_message in found:
        assert not any(word in found_path for word in ("function", "[", "oauth2", "union", "str", "Input"))
        assert "Input should" not in found_message and "Value error" not in found_message


# References and templates


def test_undeclared_reference_suggests_a_close_parameter() -> None:
    """A misspelt parameter gets a "did you mean"."""
    data = spec(parameters=[{"name": "serverName"}], request={"base_url": "https://{servername}.x.example"})
    assert problems(data) == [
        ("request.base_url", "references {servername}, which is not a declared parameter (did you mean {serverName}?)")
    ]


def test_undeclared_reference_suggests_a_close_builtin() -> None:
    """A misspelt built-in that the field allows gets a "did you mean" too."""
    assert ("token.template", "references {tokn}, which is not a declared parameter (did you mean {token}?)") in (
        problems(spec(auth={"type": "api_token"}, token={"template": "Bearer {tokn}"}))
    )


def test_builtins_are_only_available_where_they_exist() -> None:
    """``{token}`` cannot be used in the token request: there is no token yet."""
    found = problems(spec(auth=code_flow(token_params={"t": "{token}"})))
    assert found == [
        (
            "auth.token_params.t",
            "references {token}, which is not available in this field "
            "(available: {client_id}, {client_secret}, {password}, {username})",
        )
    ]


def test_credentials_do_not_exist_before_the_token_request() -> None:
    """``{credentials.x}`` is refused in the token URL and accepted in the base URL."""
    found = problems(spec(auth=code_flow(token_url="{credentials.base}/token")))
    assert ("auth.token_url", "references {credentials.base}, but credentials do not exist yet here") in found
    ok = validate_spec(spec(auth=code_flow(), request={"base_url": "{credentials.instance_url}/api"}))
    assert ok.request.base_url == "{credentials.instance_url}/api"


def test_every_templated_field_is_checked() -> None:
    """An undeclared reference is found in each templated field of every block."""
    bad = "{nope}"
    data = spec(
        auth=code_flow(
            authorization_url=f"https://{bad}.x.example/a",
            issuer=f"https://{bad}.x.example",
            token_url=f"https://{bad}.x.example/t",
            revoke_url=f"https://{bad}.x.example/r",
            client_id=bad,
            authorize_params={"p": bad},
            token_params={"p": bad},
            token_headers={"H": bad},
        ),
        token={"template": f"{{token}}{bad}"},
        request={"base_url": f"https://{bad}.x.example", "headers": {"H": bad}, "query": {"q": bad}},
        refresh={"request": {"url": f"https://{bad}.x.example", "params": {"p": bad}, "headers": {"H": bad}}},
        test={"path": f"/{bad}"},
    )
    assert sorted(paths(data)) == sorted(
        [
            "auth.authorization_url",
            "auth.issuer",
            "auth.token_url",
            "auth.revoke_url",
            "auth.client_id",
            "auth.authorize_params.p",
            "auth.token_params.p",
            "auth.token_headers.H",
            "token.template",
            "request.base_url",
            "request.headers.H",
            "request.query.q",
            "refresh.request.url",
            "refresh.request.params.p",
            "refresh.request.headers.H",
            "test.path",
        ]
    )


def test_each_alternative_of_a_list_is_checked() -> None:
    """An undeclared reference in any alternative of a list is an error."""
    data = spec(parameters=[{"name": "a"}], request={"base_url": ["https://{a}.x.example", "https://{b}.x.example"]})
    assert problems(data) == [("request.base_url", "references {b}, which is not a declared parameter")]


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{shell(rm)}", "unknown function 'shell'"),
        ("{uuid(1)}", "uuid() takes no arguments"),
        ("{now(yesterday)}", "now() takes a format"),
        ("{a b}", "contains whitespace"),
        ("{a", "starts no placeholder"),
        ("a}", "a single '}'"),
        ("{secrets.x}", "only credentials.<field> and captured.<name> have a dot"),
    ],
)
def test_template_syntax_and_unknown_functions_fail_at_load_time(template: str, reason: str) -> None:
    """Unknown functions and malformed placeholders are validation errors, not run-time surprises."""
    found = problems(spec(request={"headers": {"X": template}}))
    assert len(found) == 1
    assert found[0][0] == "request.headers.X" and reason in found[0][1]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("{host}/token", "host cannot supply a whole URL; declare it with format: url"),
        ("ftp://x.example/t", "the URL scheme must be http or https, not 'ftp'"),
        ("x.example/token", "not an absolute URL: start it with https://"),
        ("https://{host}@x.example/t", "host is in the URL user info, where no value may go"),
    ],
)
def test_url_templates_must_keep_scheme_and_host_fixed(url: str, reason: str) -> None:
    """URL fields are checked for shapes that would let a value move the scheme or host."""
    data = spec(parameters=[{"name": "host"}], auth=code_flow(token_url=url))
    assert problems(data) == [("auth.token_url", reason)]


def test_a_url_parameter_may_supply_a_whole_url() -> None:
    """A ``format: url`` parameter may start a URL template."""
    data = spec(parameters=[{"name": "base", "format": "url"}], request={"base_url": "{base}/api"})
    assert validate_spec(data).request.base_url == "{base}/api"


# Parameter defaults


def test_defaults_must_satisfy_the_parameters_rules() -> None:
    """A default outside the enum, against the pattern or of the wrong format is an error at load time."""
    data = spec(
        parameters=[
            {"name": "env", "default": "prod", "enum": ["dev", "qa"]},
            {"name": "host", "default": "A B", "pattern": "[a-z]+"},
            {"name": "base", "default": "ftp://x", "format": "url"},
            {"name": "ok", "default": "dev", "enum": ["dev"], "pattern": "d.v"},
        ]
    )
    assert problems(data) == [
        ("parameters.0.default", "'prod' is not one of dev, qa"),
        ("parameters.1.default", "'A B' does not match [a-z]+"),
        ("parameters.2.default", "must be an https URL with a host and no user info"),
    ]


# Secrets in spec errors


def test_spec_errors_never_contain_the_client_secret() -> None:
    """Whatever else is wrong, no SpecError message contains the client secret."""
    data = spec(
        key="a-b",
        auth=code_flow(client_secret=SECRET, client_secrt=SECRET, token_method=SECRET, token_url=f"https://{SECRET}/"),
        token={"template": SECRET},
    )
    with pytest.raises(SpecError, match="4 problems in the integration spec") as info:
        validate_spec(data)
    assert len(info.value.errors) >= 4
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert all(SECRET not in str(item) for item in info.value.errors)


def test_a_wrongly_typed_client_secret_is_not_echoed() -> None:
    """A client secret given as a list is refused without showing its items."""
    with pytest.raises(SpecError, match=re.escape("auth.client_secret: must be a string")) as info:
        validate_spec(spec(auth=code_flow(client_secret=[SECRET])))
    assert SECRET not in str(info.value)


# Parameter values


ACME = Integration.model_validate(
    spec(
        parameters=[
            {"name": "serverName", "required": True},
            {"name": "region", "enum": ["eu", "us"], "default": "eu"},
            {"name": "tenant", "pattern": "[a-z]{3}"},
            {"name": "apiSecret", "secret": True, "pattern": "[0-9a-f]{8}"},
            {"name": "port", "pattern": "[0-9]+"},
            {"name": "path"},
        ],
        auth=code_flow(
            authorization_url="https://{serverName}.acme.example/authorize",
            token_url="https://{serverName}.acme.example:{port}/token",
        ),
        request={
            "base_url": "https://{serverName}.{region}.acme.example/{path}",
            "headers": {"X-Key": "{apiSecret}", "X-Tenant": "{tenant}"},
        },
    )
)


def check(values: dict[str, object], integration: Integration = ACME, **options: typing.Any) -> dict[str, str]:
    return check_parameter_values(integration, values, **options)


def errors_of(values: dict[str, object], integration: Integration = ACME, **options: typing.Any) -> list[ErrorItem]:
    with pytest.raises(ParameterError, match="invalid connection parameters") as info:
        check(values, integration, **options)
    return list(info.value.errors)


def test_valid_values_come_back_with_defaults_applied() -> None:
    """Given values are returned as text, with the defaults of parameters not given."""
    assert check({"serverName": "eu1", "port": 443, "path": "v1"}) == {
        "serverName": "eu1",
        "region": "eu",
        "port": "443",
        "path": "v1",
    }


@pytest.mark.parametrize("empty", [None, ""])
def test_none_and_empty_mean_not_given(empty: object) -> None:
    """A None or empty value is treated as absent: the default applies, or the requirement fails."""
    assert check({"serverName": "eu1", "region": empty})["region"] == "eu"
    assert errors_of({"serverName": empty}) == [ErrorItem("parameters.serverName", "is required")]


def test_every_problem_is_listed_at_once() -> None:
    """Unknown names, missing required values and pattern, enum and format mismatches come together."""
    found = errors_of({"region": "ap", "tenant": "ab", "servername": "x", "bogus": "y"})
    assert found == [
        ErrorItem("parameters.servername", "is not a parameter of acme (did you mean serverName?)"),
        ErrorItem("parameters.bogus", "is not a parameter of acme"),
        ErrorItem("parameters.serverName", "is required"),
        ErrorItem("parameters.region", "'ap' is not one of eu, us"),
        ErrorItem("parameters.tenant", "'ab' does not match [a-z]{3}"),
    ]
    assert str(ParameterError(found)).startswith("invalid connection parameters:\n  parameters.servername")


@pytest.mark.parametrize("value", [True, ["a"], {"a": 1}, object()])
def test_values_must_be_text_or_numbers(value: object) -> None:
    """Booleans, lists and mappings are not parameter values."""
    assert errors_of({"serverName": value}) == [ErrorItem("parameters.serverName", "must be a string")]


FORMATS = Integration.model_validate(
    spec(
        parameters=[
            {"name": "host", "format": "hostname"},
            {"name": "base", "format": "url"},
            {"name": "id", "format": "uuid"},
            {"name": "mail", "format": "email"},
        ]
    )
)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("host", "example.com"),
        ("host", "a-b.c1.example"),
        ("host", "localhost"),
        ("base", "https://x.example"),
        ("base", "https://x.example:8443/api/v1"),
        ("id", "3f0e7a36-0f5c-4a3a-8e65-2d1c0c6b9f11"),
        ("mail", "ops@x.example"),
    ],
)
def test_formats_accept_good_values(name: str, value: str) -> None:
    """Host names, https URLs, UUIDs and email addresses pass their format."""
    assert check({name: value}, FORMATS) == {name: value}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("host", "example.com\n", "must be a host name (letters, digits, '-' and '.')"),
        ("host", "evil.com/x", "must be a host name (letters, digits, '-' and '.')"),
        ("host", "-x.example", "must be a host name (letters, digits, '-' and '.')"),
        ("host", "a@b", "must be a host name (letters, digits, '-' and '.')"),
        ("host", "x" * 64 + ".example", "must be a host name (letters, digits, '-' and '.')"),
        ("base", "https://user@x.example", "must be an https URL with a host and no user info"),
        ("base", "http://x.example", "must be an https URL with a host and no user info"),
        ("base", "ftp://x.example", "must be an https URL with a host and no user info"),
        ("base", "https://", "must be an https URL with a host and no user info"),
        ("base", "https://x.example:99999", "must be an https URL with a host and no user info"),
        ("base", "https://x.example/a b", "must be an https URL with a host and no user info"),
        ("base", "x.example", "must be an https URL with a host and no user info"),
        ("id", "not-a-uuid", "must be a UUID"),
        ("mail", "a@b", "must be an email address"),
        ("mail", "a b@x.example", "must be an email address"),
        ("mail", "ops@x.example\n", "must be an email address"),
    ],
)
def test_formats_refuse_bad_values(name: str, value: str, message: str) -> None:
    """Each format refuses look-alikes, trailing newlines and URLs with user info."""
    assert errors_of({name: value}, FORMATS) == [ErrorItem(f"parameters.{name}", message)]


def test_a_url_parameter_may_use_http_where_the_server_allows() -> None:
    """``allow_http`` admits http URLs to the hosts it accepts."""
    assert check({"base": "http://localhost:8080"}, FORMATS, allow_http=lambda host: host == "localhost")
    assert errors_of({"base": "http://x.example"}, FORMATS, allow_http=lambda host: host == "localhost")


@pytest.mark.parametrize(
    ("value", "field", "reason"),
    [
        ("evil.com/x", "auth.authorization_url", "is not a valid host name part"),
        ("a@b", "auth.authorization_url", "is not a valid host name part"),
        ("x.example#", "auth.authorization_url", "is not a valid host name part"),
        ("x:1", "auth.authorization_url", "is not a valid host name part"),
    ],
)
def test_a_value_the_url_templates_refuse_is_named(value: str, field: str, reason: str) -> None:
    """A value that would move a URL's host is reported on the parameter, naming the field."""
    found = errors_of({"serverName": value})
    assert len(found) == 1
    assert found[0].path == "parameters.serverName"
    assert found[0].message.startswith(f"cannot be used in {field}: the value of serverName ")
    assert reason in found[0].message


def test_a_port_value_must_be_digits_where_the_template_puts_a_port() -> None:
    """A value in the port position is checked by the URL rules even without a pattern of its own."""
    integration = Integration.model_validate(
        spec(parameters=[{"name": "port"}], request={"base_url": "https://x.example:{port}/api"})
    )
    assert check({"port": "8443"}, integration) == {"port": "8443"}
    [error] = errors_of({"port": "80@evil.example"}, integration)
    assert error.path == "parameters.port" and "is not a port number" in error.message


def test_values_in_a_path_are_encoded_not_refused() -> None:
    """A value in a URL path is percent-encoded later, so slashes and @ are fine there."""
    assert check({"serverName": "eu1", "path": "a/b@c?d"})["path"] == "a/b@c?d"


def test_a_whole_url_value_is_checked_where_it_is_used() -> None:
    """A ``format: url`` value that fills a whole base URL must not carry a query."""
    integration = Integration.model_validate(
        spec(parameters=[{"name": "base", "format": "url"}], request={"base_url": "{base}/api"})
    )
    assert check({"base": "https://x.example/v2"}, integration) == {"base": "https://x.example/v2"}
    [error] = errors_of({"base": "https://x.example/?a=1"}, integration)
    assert error == ErrorItem(
        "parameters.base",
        "cannot be used in request.base_url: the value of base must not contain a query or a fragment",
    )


def test_every_alternative_of_a_url_is_checked() -> None:
    """A value refused by the second alternative of a list is reported too."""
    integration = Integration.model_validate(
        spec(
            parameters=[{"name": "a"}, {"name": "b"}],
            request={"base_url": ["https://{a}.x.example/{b}", "https://{b}.x.example"]},
        )
    )
    [error] = errors_of({"a": "eu", "b": "x/y"}, integration)
    assert error.path == "parameters.b" and "request.base_url" in error.message


@pytest.mark.parametrize("value", ["abc\r\nX-Evil: 1", "abc\n", "a\x00b"])
def test_a_header_value_with_a_line_break_is_refused(value: str) -> None:
    """A value substituted into a header may not contain CR, LF or NUL."""
    integration = Integration.model_validate(
        spec(parameters=[{"name": "team"}], request={"headers": {"X-Team": "{team}"}})
    )
    assert check({"team": "a b"}, integration) == {"team": "a b"}
    assert errors_of({"team": value}, integration) == [
        ErrorItem(
            "parameters.team",
            "cannot be used in request.headers.X-Team: the value of team contains a line break, NUL or other "
            "control character, which cannot go in a header",
        )
    ]


def test_rule_and_template_problems_are_listed_together() -> None:
    """A pattern mismatch on one parameter does not hide a template problem on another."""
    found = errors_of({"serverName": "evil.com/x", "tenant": "toolong"})
    assert [e.path for e in found] == ["parameters.tenant", "parameters.serverName"]


SECRET_VALUES = [SECRET, f"{SECRET}\r\n", f"zz{SECRET}"]


@pytest.mark.parametrize("value", SECRET_VALUES)
def test_messages_about_secret_parameters_never_contain_the_value(value: str) -> None:
    """Pattern and header problems of a secret parameter are reported without its value."""
    with pytest.raises(ParameterError, match=r"parameters\.apiSecret: the value does not match") as info:
        check({"serverName": "eu1", "apiSecret": value})
    assert [e.path for e in info.value.errors] == ["parameters.apiSecret"]
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_messages_about_secret_enum_and_format_never_contain_the_value() -> None:
    """Enum and format problems of secret parameters do not echo the value either."""
    integration = Integration.model_validate(
        spec(
            parameters=[
                {"name": "pin", "secret": True, "enum": ["1111"]},
                {"name": "key", "secret": True, "format": "uuid"},
                {"name": "host", "secret": True},
                {"name": "header", "secret": True},
            ],
            request={"base_url": "https://{host}.x.example", "headers": {"X-Key": "{header}"}},
        )
    )
    with pytest.raises(ParameterError, match="invalid connection parameters") as info:
        check({"pin": SECRET, "key": SECRET, "host": f"{SECRET}/x", "header": f"{SECRET}\n"}, integration)
    assert [e.path for e in info.value.errors] == [f"parameters.{n}" for n in ("pin", "key", "host", "header")]
    assert SECRET not in str(info.value)


def test_base_url_cannot_carry_a_query() -> None:
    """request.base_url with a query or fragment is refused when saved (paths are appended to it)."""
    with pytest.raises(SpecError, match=re.escape("request.base_url: cannot carry a query or fragment")) as info:
        validate_spec({"key": "a", "name": "A", "request": {"base_url": "https://api.example/v1?api-version=2"}})
    assert [(e.path, e.message) for e in info.value.errors] == [
        ("request.base_url", "cannot carry a query or fragment; put query parameters in request.query")
    ]


# Parsers that cannot be made slow


def test_a_catastrophic_pattern_answers_at_once_on_a_long_value() -> None:
    """``^(a+)+$`` on 2 KiB of a's ending in '!' is exponential for Python's re; RE2 answers in linear time."""
    integration = Integration.model_validate(spec(parameters=[{"name": "p", "pattern": "^(a+)+$"}]))
    value = "a" * 2047 + "!"
    assert errors_of({"p": value}, integration) == [ErrorItem("parameters.p", f"{value!r} does not match ^(a+)+$")]
    assert check({"p": "a" * 2048}, integration) == {"p": "a" * 2048}


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [("(?=a)b", "invalid perl operator"), ("(a)\\1", "invalid escape sequence"), ("[a-z", "missing ]")],
)
def test_a_pattern_re2_cannot_run_is_refused_when_saved(pattern: str, reason: str) -> None:
    """Lookarounds, backreferences and broken syntax are refused at save time, naming the field."""
    [(path, message)] = problems(spec(parameters=[{"name": "p", "pattern": pattern}]))
    assert path == "parameters.0.pattern"
    assert message.startswith("is not a valid regular expression for RE2") and reason in message


def test_values_longer_than_the_limit_are_refused_before_any_check() -> None:
    """A value over ``max_length`` (2048 by default) is refused with the limit, never matched or rendered."""
    integration = Integration.model_validate(spec(parameters=[{"name": "p"}, {"name": "mail", "format": "email"}]))
    assert check({"p": "x" * 2048}, integration) == {"p": "x" * 2048}
    assert errors_of({"p": "x" * 2049}, integration) == [ErrorItem("parameters.p", "is longer than 2048 characters")]
    assert errors_of({"p": "x" * 11}, integration, max_length=10) == [
        ErrorItem("parameters.p", "is longer than 10 characters")
    ]


@pytest.mark.parametrize(
    "value",
    ["a@" + "." * 40_000 + "@", "a@" + "a." * 20_000 + " ", "x@" + "a" * 40_000, "@" * 40_000],
)
def test_the_email_format_is_linear_on_hostile_values(value: str) -> None:
    """Values that made the email regex backtrack (20 s on 40 kB) are refused at once."""
    assert errors_of({"mail": value}, FORMATS, max_length=100_000) == [
        ErrorItem("parameters.mail", "must be an email address")
    ]


@pytest.mark.parametrize(
    ("value", "ok"),
    [("ops@x.example", True), ("a.b+c@d.e", True), ("a@b", False), ("a@.b", False), ("a@b.", False),
     ("@x.example", False), ("a@@x.example", False), ("a@b@x.example", False), ("a\u2003@x.example", False)],
)  # fmt: skip
def test_the_email_format_accepts_what_the_regex_did(value: str, ok: bool) -> None:
    """One ``@``, a non-empty local part, a dot inside the domain, no whitespace (Unicode included)."""
    if ok:
        assert check({"mail": value}, FORMATS) == {"mail": value}
    else:
        assert errors_of({"mail": value}, FORMATS) == [ErrorItem("parameters.mail", "must be an email address")]


# Control characters and header names, refused when the spec is saved


CONTROL_MESSAGE = "contains a control character (line break, NUL...), which cannot be sent"


@pytest.mark.parametrize("bad", ["\r", "\n", "\0", "\x01", "\x7f"])
@pytest.mark.parametrize("placement", ["header", "query"])
def test_a_token_template_with_a_control_character_is_refused_when_saved(bad: str, placement: str) -> None:
    """CR, LF, NUL (and every control) in ``token.template`` fail validation, wherever the token goes."""
    data = spec(auth={"type": "api_token"}, token={"in": placement, "name": "X-Token", "template": f"T {{token}}{bad}"})
    assert problems(data) == [("token.template", CONTROL_MESSAGE)]


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"request": {"headers": {"X-A": "a\r\nX-Evil: 1"}}}, "request.headers.X-A"),
        ({"auth": {"type": "custom_token", "token_url": "https://x.example/t", "token_headers": {"X": "\0"}}},
         "auth.token_headers.X"),
        ({"request": {"base_url": "https://x.example/a\nb"}}, "request.base_url"),
        ({"request": {"base_url": "https://x.example"}, "test": {"path": "/me\r\n"}}, "test.path"),
        ({"request": {"headers": {"X-A": ["{p}", "ok\x1b"]}}, "parameters": [{"name": "p"}]}, "request.headers.X-A"),
    ],
)  # fmt: skip
def test_control_characters_in_headers_and_urls_are_refused_when_saved(fields: dict[str, object], path: str) -> None:
    """Header values, URLs and the test path are checked for controls, each alternative included."""
    assert (path, CONTROL_MESSAGE) in problems(spec(**fields))


def test_a_tab_in_a_header_template_is_allowed() -> None:
    """HTAB is a valid header value character."""
    validate_spec(spec(request={"headers": {"X-A": "a\tb"}}))


@pytest.mark.parametrize("name", ["X A", "X:A", "X\r\nA", "Ünï", ""])
def test_header_names_must_be_http_tokens(name: str) -> None:
    """A header name with a space, colon, control or non-ASCII character is refused when saved."""
    assert problems(spec(request={"headers": {name: "v"}})) == [
        (f"request.headers.{name}", "is not a valid HTTP header name")
    ]


# Host-part values are DNS names


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a..b", "not a valid host name (an empty label, or too long)"),
        (".eu", "the rendered host name has an empty label"),
        ("eu.", "the rendered host name has an empty label"),
        ("-eu", "the rendered host name has a label that starts or ends with '-'"),
        ("eu-", "the rendered host name has a label that starts or ends with '-'"),
        ("x" * 64, "the rendered host name has a label that is not 1 to 63 letters, digits or '-'"),
        (".".join(["x" * 60] * 4), "the rendered host name must be 1 to 253 characters"),
    ],
)
def test_a_host_value_must_make_a_dns_name(value: str, reason: str) -> None:
    """Labels of 1-63 characters, 253 in all, no empty label, no '-' at a label's ends: a 422 before any request."""
    [error] = errors_of({"serverName": value})
    assert error.path == "parameters.serverName"
    assert error.message.startswith("cannot be used in auth.authorization_url: ") and reason in error.message


def test_host_values_that_make_dns_names_pass() -> None:
    """Several labels, digits, inner hyphens and a 63-character label are fine."""
    for value in ("eu1", "eu-west.prod", "x" * 63, "1.2.3.4"):
        assert check({"serverName": value})["serverName"] == value


@pytest.mark.parametrize("value", ["a..b", "a.", ".a", "-a.b", "a-.b", "x" * 64, ".".join(["x" * 60] * 5), ""])
def test_the_hostname_format_is_a_dns_name(value: str) -> None:
    """``format: hostname`` applies the same rules (an empty value is 'not given')."""
    if value:
        assert errors_of({"host": value}, FORMATS) == [
            ErrorItem("parameters.host", "must be a host name (letters, digits, '-' and '.')")
        ]
    else:
        assert check({"host": value}, FORMATS) == {}


# Dot segments


@pytest.mark.parametrize("value", [".", ".."])
@pytest.mark.parametrize(
    ("request_block", "test_block", "field"),
    [
        ({"base_url": "https://x.example/tenants/{p}/v1"}, None, "request.base_url"),
        ({"base_url": "https://x.example/v1"}, {"path": "/items/{p}"}, "test.path"),
    ],
)
def test_a_dot_segment_value_is_refused_when_the_connection_is_created(
    value: str, request_block: dict[str, str], test_block: dict[str, str] | None, field: str
) -> None:
    """'.' and '..' in a path position (base URL or test path) are a parameter error, before any request."""
    integration = Integration.model_validate(spec(parameters=[{"name": "p"}], request=request_block, test=test_block))
    [error] = errors_of({"p": value}, integration)
    assert error.path == "parameters.p"
    assert error.message.startswith(f"cannot be used in {field}: the value of p is {value!r}, which cannot be")
    assert check({"p": "..."}, integration) == {"p": "..."}


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"request": {"base_url": "https://x.example/v1/../admin"}}, "request.base_url"),
        ({"request": {"base_url": "https://x.example/v1/%2E%2e"}}, "request.base_url"),
        ({"request": {"base_url": "https://x.example"}, "test": {"path": "/a/./b"}}, "test.path"),
        ({"auth": {"type": "custom_token", "token_url": ["https://x.example/a", "https://x.example/.."]}},
         "auth.token_url"),
    ],
)  # fmt: skip
def test_a_literal_dot_segment_is_refused_when_saved(fields: dict[str, object], path: str) -> None:
    """A '.' or '..' segment written into a URL or the test path is refused with the spec."""
    assert (path, "has a '.' or '..' path segment, which would climb out") in problems(spec(**fields))


# Natural specs (the end-to-end runs are in tests/api/test_natural_specs_e2e.py)


def test_username_and_password_parameters_outside_basic() -> None:
    """They are accepted in custom_token and OAuth code flows, and fill {username}/{password}; password is secret."""
    data = spec(
        parameters=[{"name": "username"}, {"name": "password"}],
        auth={
            "type": "custom_token",
            "token_url": "https://x.example/login",
            "token_params": {"user": "{username}", "pass": "{password}"},
        },
    )
    integration = validate_spec(data)
    assert [(p.name, p.secret) for p in integration.parameters] == [("username", False), ("password", True)]
    with pytest.raises(SpecError, match="a parameter named password is always secret"):
        validate_spec({**data, "parameters": [{"name": "password", "secret": False}]})


def test_token_in_the_test_request() -> None:
    """{token} may be used in test.path and test.headers; an undeclared name still is not."""
    data = spec(auth={"type": "api_token"}, request={"base_url": "https://x.example"})
    validate_spec({**data, "test": {"path": "/t/{token}", "headers": {"X-T": "{token}"}}})
    assert problems({**data, "test": {"path": "/t/{tokn}"}}) == [
        ("test.path", "references {tokn}, which is not a declared parameter (did you mean {token}?)")
    ]


@pytest.mark.parametrize(
    ("callback", "message"),
    [
        ({"capture": ["a"], "patterns": {"b": "x"}}, "'b' is not a captured field (list it in capture)"),
        ({"capture": ["a"], "patterns": {"a": "(?=x)"}}, "a: is not a valid regular expression for RE2"),
    ],
)
def test_callback_patterns_name_captured_fields_and_compile(callback: dict[str, object], message: str) -> None:
    """Each pattern names a captured field and compiles with RE2."""
    [(path, text)] = problems(spec(auth=code_flow(callback=callback)))
    assert path == "auth.callback.patterns" and text.startswith(message)
