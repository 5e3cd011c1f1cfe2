"""Authorization URL shaping: renamed client id and scope parameters, raw values, optional authorize_params.

Through the real OAuth test server: ``tests/api/test_authorize_shaping_e2e.py``.
"""

from __future__ import annotations

import typing
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from authbridge.auth import AuthContext, authorization_url
from authbridge.errors import SpecError, TemplateError, UnsafeValueError
from authbridge.spec import Integration, validate_spec
from tests.auth.test_oauth2 import REDIRECT, make_ctx

HOSTILE = "x&redirect_uri=https://evil.example/cb&state=forged#frag"


def url_of(ctx: AuthContext) -> str:
    return authorization_url(ctx, state="st", code_challenge=None)


def pairs_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def ctx_with(parameters: dict[str, str], params: list[dict[str, typing.Any]], **auth: typing.Any) -> AuthContext:
    base = make_ctx(**auth)
    declared = [{"name": "serverName"}, *params]
    spec = Integration.model_validate({**base.integration.model_dump(by_alias=True), "parameters": declared})
    return AuthContext(spec, parameters={"serverName": "eu1", **parameters}, redirect_uri=REDIRECT)


def test_the_url_keeps_its_own_query_and_replaces_standard_names() -> None:
    """Query parameters already in the URL stay; a standard one there is replaced, never doubled."""
    ctx = make_ctx(authorization_url="https://id.example/authorize?tenant=a%20b&state=stale&client_id=old")
    params = httpx.URL(url_of(ctx)).params
    assert params["tenant"] == "a b"
    assert params.get_list("state") == ["st"] and params.get_list("client_id") == ["client-eu1"]


def test_the_client_id_and_scope_parameters_may_be_renamed() -> None:
    """``authorize_client_id_param`` and ``authorize_scope_param`` rename them; the standard names are not sent."""
    ctx = make_ctx(authorize_client_id_param="client_key", authorize_scope_param="user_scope", scope_separator=",")
    params = dict(pairs_of(url_of(ctx)))
    assert params["client_key"] == "client-eu1" and params["user_scope"] == "read,write"
    assert "client_id" not in params and "scope" not in params
    assert params["redirect_uri"] == REDIRECT and params["response_type"] == "code"


def test_an_authorize_params_entry_of_the_renamed_scope_fills_in_when_no_scopes() -> None:
    """With no scopes declared, ``authorize_params`` may give the (renamed) scope parameter."""
    ctx = make_ctx(scopes=[], authorize_scope_param="scopes", authorize_params={"scopes": "a b"})
    assert dict(pairs_of(url_of(ctx)))["scopes"] == "a b"


def test_values_are_form_encoded_by_default() -> None:
    """A comma separator is sent as %2C unless the scope is raw."""
    assert "scope=read%2Cwrite" in url_of(make_ctx(scope_separator=","))


@pytest.mark.parametrize(("separator", "expected"), [(",", "scope=read,write"), ("+", "scope=read+write")])
def test_a_raw_scope_is_sent_as_written(separator: str, expected: str) -> None:
    """``authorize_raw: [scope]`` sends ``read,write`` (or ``read+write``) without percent-encoding."""
    url = url_of(make_ctx(scope_separator=separator, authorize_raw=["scope"]))
    assert f"&{expected}&" in url


def test_a_raw_client_id_and_redirect_uri() -> None:
    """A raw client id keeps its ':' and '/', a raw redirect_uri is sent unencoded."""
    ctx = make_ctx(client_id="urn:acme:{serverName}", authorize_raw=["client_id", "redirect_uri"])
    url = url_of(ctx)
    assert "client_id=urn:acme:eu1&" in url and f"redirect_uri={REDIRECT}&" in url


def test_a_hostile_parameter_value_is_encoded() -> None:
    """A value trying to add redirect_uri, state or a fragment stays one value of one parameter."""
    ctx = ctx_with({"hint": HOSTILE}, [{"name": "hint"}], authorize_params={"login_hint": "{hint}"})
    url = url_of(ctx)
    parsed = httpx.URL(url)
    assert parsed.fragment == "" and "#" not in url
    assert parsed.params["login_hint"] == HOSTILE
    assert parsed.params.get_list("redirect_uri") == [REDIRECT] and parsed.params.get_list("state") == ["st"]


@pytest.mark.parametrize("value", [HOSTILE, "a b", "50%", "a=b", "x?y", "é", "a\r\nb"])
def test_a_raw_value_that_would_change_the_url_is_refused(value: str) -> None:
    """A raw parameter's value with ``&``, ``#``, ``=``, ``%``, ``?``, a space or non-ASCII fails, naming it."""
    ctx = ctx_with(
        {"hint": value}, [{"name": "hint"}], authorize_params={"login_hint": "{hint}"}, authorize_raw=["login_hint"]
    )
    with pytest.raises(UnsafeValueError, match=r"auth\.authorize_raw: the value of login_hint holds .* unencoded"):
        url_of(ctx)


def test_an_optional_parameter_without_a_value_leaves_its_entry_out() -> None:
    """``login_hint: "{hint}"`` is sent when the connection gives a hint, left out otherwise."""
    params = [{"name": "hint"}]
    with_hint = ctx_with({"hint": "a@b.example"}, params, authorize_params={"login_hint": "{hint}", "p": "x"})
    assert dict(pairs_of(url_of(with_hint)))["login_hint"] == "a@b.example"
    without = ctx_with({}, params, authorize_params={"login_hint": "{hint}", "p": "x"})
    assert "login_hint" not in dict(pairs_of(url_of(without)))
    alternatives = ctx_with({}, params, authorize_params={"login_hint": ["{hint}", "{serverName}@x"]})
    assert dict(pairs_of(url_of(alternatives)))["login_hint"] == "eu1@x"


def test_a_required_parameter_without_a_value_is_still_an_error() -> None:
    """Only optional parameters leave their entry out; a missing required one fails clearly."""
    ctx = ctx_with({}, [{"name": "hint", "required": True}], authorize_params={"login_hint": "{hint}"})
    with pytest.raises(TemplateError, match=r"auth\.authorize_params\.login_hint: needs hint"):
        url_of(ctx)


def spec_problems(**auth: typing.Any) -> list[str]:
    data = {
        "key": "acme",
        "name": "Acme",
        "auth": {
            "type": "oauth2",
            "authorization_url": "https://acme.example/authorize",
            "token_url": "https://acme.example/token",
            "client_id": "cid",
            "scopes": ["read", "write"],
            **auth,
        },
    }
    with pytest.raises(SpecError) as info:
        validate_spec(data)
    return [f"{item.path}: {item.message}" for item in info.value.errors]


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"authorize_client_id_param": "app&id"}, "must be 1 to 64 letters"),
        ({"authorize_scope_param": "redirect_uri"}, "redirect_uri is a parameter AuthBridge sets itself"),
        ({"authorize_scope_param": "state"}, "state is a parameter AuthBridge sets itself"),
        ({"authorize_client_id_param": "key", "authorize_scope_param": "key"}, "cannot be the same name"),
        ({"authorize_raw": ["state"]}, "authorize_raw: state is not a parameter of the authorization URL"),
        ({"authorize_raw": ["scope"]}, "scope is sent unencoded but holds ' '"),
        ({"authorize_raw": ["p"], "authorize_params": {"p": "a#{x}"}}, "p is sent unencoded but holds '#'"),
        ({"authorize_raw": ["p"], "authorize_params": {"p": "a{{b}}"}}, "p is sent unencoded but holds '{}'"),
    ],
    ids=["bad-name", "own-name", "state", "same", "raw-state", "raw-space-scope", "raw-literal", "raw-brace"],
)
def test_shaping_mistakes_are_refused_at_load(auth: dict[str, typing.Any], expected: str) -> None:
    """Each shaping field is checked when the spec is loaded."""
    found = spec_problems(**auth)
    assert any(expected in p for p in found), found
