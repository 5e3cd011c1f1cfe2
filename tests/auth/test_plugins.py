"""The auth-type plugins: one protocol, one plugin per type, driven over httpx.MockTransport as the broker does."""

from __future__ import annotations

import base64
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import httpx
import pytest

from authbridge.auth import (
    PLUGINS,
    AuthContext,
    AuthPlugin,
    Entered,
    Redirect,
    TokenExchange,
    TokenFlow,
    TokenSet,
    plugin_for,
)
from authbridge.auth.base import Deferred, endpoint_text
from authbridge.errors import CallbackError, ConnectionStateError, TokenEndpointError
from authbridge.spec import Integration
from authbridge.spec.models import AuthSpec
from tests.auth.flows import drive

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REDIRECT = "https://bridge.example/oauth/callback"
SECRET = "cs-Secr3t-distinct"


def spec_of(auth: dict[str, typing.Any], **extra: typing.Any) -> Integration:
    return Integration.model_validate(
        {"key": "acme", "name": "Acme", "request": {"base_url": "https://api.acme.example"}, "auth": auth, **extra}
    )


def oauth2(**auth: typing.Any) -> Integration:
    return spec_of(
        {
            "type": "oauth2",
            "authorization_url": "https://acme.example/authorize",
            "token_url": "https://acme.example/token",
            "client_id": "cid",
            "client_secret": SECRET,
            **auth,
        }
    )


def ctx_of(spec: Integration, **values: typing.Any) -> AuthContext:
    return AuthContext(spec, redirect_uri=REDIRECT, clock=lambda: NOW, **values)


def run(exchange: TokenExchange, handler: Callable[[httpx.Request], httpx.Response]) -> TokenSet:
    """Drive a token flow the way the broker does: send what it yields, hand it the answer."""
    return drive(exchange.flow, handler)


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode()))


def token_answer(seen: list[httpx.Request], **body: typing.Any) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "at-new", "token_type": "bearer", **body})

    return handler


# -- the registry -------------------------------------------------------------------------------


def test_every_auth_model_of_the_spec_has_its_plugin() -> None:
    models = typing.get_args(typing.get_args(AuthSpec)[0])
    assert {model.model_fields["type"].default for model in models} == set(PLUGINS)
    for name, plugin in PLUGINS.items():
        assert plugin.type == name
        assert plugin.model().type == name  # type: ignore[attr-defined]
        assert plugin.label


def test_plugin_for_takes_a_block_or_a_name_and_refuses_an_unknown_type() -> None:
    assert plugin_for(oauth2().auth) is PLUGINS["oauth2"]
    assert plugin_for("basic") is PLUGINS["basic"]
    with pytest.raises(ValueError, match="unknown auth type 'saml'; known: oauth2, custom_token"):
        plugin_for("saml")


# -- what each type is ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "inputs", "redirects", "refreshable", "entered", "stores"),
    [
        ({"type": "oauth2", "token_url": "https://a.example/t"}, [], True, True, False, True),
        (
            {"type": "oauth2", "grant_type": "password"},
            [("username", False), ("password", True)],
            False,
            True,
            False,
            True,
        ),
        ({"type": "oauth2", "grant_type": "client_credentials"}, [], False, True, False, True),
        (
            {"type": "custom_token", "token_url": "https://a.example/t", "token_params": {"u": "{username}"}},
            [("username", False)],
            False,
            True,
            False,
            True,
        ),
        ({"type": "api_token"}, [("token", True)], False, False, True, True),
        ({"type": "basic"}, [("username", False), ("password", True)], False, False, True, True),
        ({"type": "none"}, [], False, False, False, False),
    ],
)
def test_what_each_type_asks_and_does(
    auth: dict[str, typing.Any],
    inputs: list[tuple[str, bool]],
    redirects: bool,
    refreshable: bool,
    entered: bool,
    stores: bool,
) -> None:
    spec = spec_of(auth)
    plugin = plugin_for(spec.auth)
    assert [(i.name, i.secret) for i in plugin.inputs(spec)] == inputs
    assert plugin.redirects(spec) is redirects
    assert plugin.refreshable(spec) is refreshable
    assert plugin.entered(spec) is entered
    assert plugin.stores_credentials(spec) is stores


def test_a_parameter_of_the_same_name_supplies_a_referenced_credential() -> None:
    spec = spec_of(
        {
            "type": "custom_token",
            "token_url": "https://a.example/t",
            "token_params": {"u": "{username}", "p": "{password}"},
        },
        parameters=[{"name": "username"}],
    )
    assert [i.name for i in plugin_for(spec.auth).inputs(spec)] == ["password"]


def test_only_an_oauth2_integration_with_a_revoke_url_revokes() -> None:
    assert plugin_for("oauth2").revokes(oauth2(revoke_url="https://acme.example/revoke"))
    assert not plugin_for("oauth2").revokes(oauth2())
    assert not plugin_for("api_token").revokes(spec_of({"type": "api_token"}))


# -- begin, callback, finish ----------------------------------------------------------------------


def test_authorization_code_begins_with_a_redirect_and_keeps_state_and_verifier() -> None:
    spec = oauth2()
    start = plugin_for(spec.auth).begin(ctx_of(spec))
    assert isinstance(start, Redirect)
    query = dict(httpx.URL(start.url).params)
    assert query["state"] == start.state
    assert query["code_challenge_method"] == "S256"
    assert start.code_verifier is not None and len(start.code_verifier) == 64
    no_pkce = plugin_for("oauth2").begin(ctx_of(oauth2(pkce=False)))
    assert isinstance(no_pkce, Redirect) and no_pkce.code_verifier is None


def test_client_credentials_begins_with_one_token_request() -> None:
    spec = oauth2(grant_type="client_credentials", scopes=["read"])
    start = plugin_for(spec.auth).begin(ctx_of(spec))
    assert isinstance(start, TokenExchange) and start.hookable
    seen: list[httpx.Request] = []
    tokens = run(start, token_answer(seen, expires_in=60))
    assert tokens.access_token == "at-new"
    assert tokens.expires_at == NOW + timedelta(seconds=60)
    assert [form(r)["grant_type"] for r in seen] == ["client_credentials"]


def test_callback_checks_issuer_and_code_then_finish_exchanges_the_code() -> None:
    spec = oauth2(issuer="https://acme.example")
    plugin, ctx = plugin_for(spec.auth), ctx_of(spec)
    with pytest.raises(CallbackError, match="carried no issuer"):
        plugin.callback(ctx, {"code": "c"}, None)
    with pytest.raises(CallbackError, match="unexpected issuer"):
        plugin.callback(ctx, {"code": "c", "iss": "https://evil.example"}, None)
    with pytest.raises(CallbackError, match="no authorization code"):
        plugin.callback(ctx, {"iss": "https://acme.example"}, None)
    accepted = plugin.callback(ctx, {"code": "the-code", "iss": "https://acme.example"}, "v" * 43)
    exchange = plugin.finish(ctx, accepted)
    assert exchange.secrets == ("the-code", "v" * 43)
    seen: list[httpx.Request] = []
    assert run(exchange, token_answer(seen, refresh_token="rt-new")).refresh_token == "rt-new"
    sent = form(seen[0])
    assert (sent["grant_type"], sent["code"], sent["code_verifier"]) == ("authorization_code", "the-code", "v" * 43)


def test_types_without_a_redirect_refuse_a_callback() -> None:
    spec = spec_of({"type": "api_token"})
    with pytest.raises(ConnectionStateError, match="not authorized through a redirect"):
        plugin_for(spec.auth).callback(ctx_of(spec), {"code": "c"}, None)


def test_entered_types_begin_with_what_the_user_entered() -> None:
    token = plugin_for("api_token").begin(ctx_of(spec_of({"type": "api_token"}), inputs={"token": "tk-1234"}))
    assert token == Entered(access_token="tk-1234")
    basic = plugin_for("basic").begin(ctx_of(spec_of({"type": "basic"}), inputs={"username": "u", "password": "p"}))
    assert basic == Entered(inputs={"username": "u", "password": "p"})
    assert plugin_for("none").begin(ctx_of(spec_of({"type": "none"}))) is None


# -- refresh, revoke -------------------------------------------------------------------------------


def test_authorization_code_refreshes_with_its_refresh_token_and_no_hook_replaces_it() -> None:
    spec = oauth2()
    exchange = plugin_for(spec.auth).refresh(ctx_of(spec, refresh_token="rt-old"))
    assert not exchange.hookable
    seen: list[httpx.Request] = []
    tokens = run(exchange, token_answer(seen))
    assert form(seen[0])["refresh_token"] == "rt-old"
    assert tokens.refresh_token == "rt-old"  # kept when the answer brings none


def test_authorization_code_without_a_refresh_token_cannot_refresh() -> None:
    spec = oauth2()
    with pytest.raises(TokenEndpointError, match="cannot be refreshed without the user") as caught:
        plugin_for(spec.auth).refresh(ctx_of(spec))
    assert caught.value.permanent


def test_custom_token_refreshes_by_asking_again_and_its_ttl_sets_the_expiry() -> None:
    spec = spec_of({"type": "custom_token", "token_url": "https://acme.example/token", "ttl": "10m"})
    tokens = run(plugin_for(spec.auth).refresh(ctx_of(spec)), token_answer([]))
    assert tokens.expires_at == NOW + timedelta(minutes=10)


@pytest.mark.parametrize("kind", ["api_token", "basic", "none"])
def test_types_without_a_token_endpoint_cannot_refresh(kind: str) -> None:
    spec = spec_of({"type": kind})
    with pytest.raises(ConnectionStateError, match=f"a {kind} connection has no token to refresh"):
        plugin_for(spec.auth).refresh(ctx_of(spec))


def test_revoke_requests_come_from_the_plugin() -> None:
    spec = oauth2(revoke_url="https://acme.example/revoke")
    ctx = ctx_of(spec, access_token="at-1", refresh_token="rt-1")
    assert [r.token_type for r in plugin_for(spec.auth).revoke(ctx)] == ["refresh_token", "access_token"]
    assert plugin_for("api_token").revoke(ctx_of(spec_of({"type": "api_token"}), access_token="at-1")) == []


# -- placement -------------------------------------------------------------------------------------


def test_apply_places_the_token_where_the_spec_says() -> None:
    spec = spec_of({"type": "api_token"}, token={"in": "query", "name": "key", "template": "{token}"})
    request = plugin_for(spec.auth).apply(
        ctx_of(spec, access_token="tk-1"), httpx.Request("GET", "https://api.acme.example/me")
    )
    assert request.url.params["key"] == "tk-1"
    assert "authorization" not in request.headers


def test_basic_places_a_basic_header_and_none_places_only_the_request_parameters() -> None:
    spec = spec_of({"type": "basic"}, request={"base_url": "https://a.example", "headers": {"X-App": "app"}})
    headers, _query = plugin_for(spec.auth).placement(ctx_of(spec, inputs={"username": "u", "password": "p:w"}))
    assert headers == {"X-App": "app", "Authorization": "Basic " + base64.b64encode(b"u:p:w").decode()}
    bare = spec_of({"type": "none"}, request={"base_url": "https://a.example", "headers": {"X-App": "app"}})
    assert plugin_for(bare.auth).placement(ctx_of(bare)) == ({"X-App": "app"}, {})


# -- the protocol fits a multi-step token request --------------------------------------------------


class _TwoStep(AuthPlugin):
    """A nonce first, then the token: the shape multi-step token requests will take."""

    type = "two_step"

    def begin(self, ctx: AuthContext) -> TokenExchange:
        return TokenExchange(self._steps(ctx))

    def _steps(self, ctx: AuthContext) -> TokenFlow:
        nonce = (yield httpx.Request("GET", "https://acme.example/nonce")).json()["nonce"]
        answer = yield httpx.Request("POST", "https://acme.example/token", data={"nonce": nonce})
        secrets = ctx.secrets()
        return self.read_token(ctx, answer, endpoint=endpoint_text(answer.request.url, secrets), secrets=secrets)

    def read_token(
        self,
        ctx: AuthContext,
        response: httpx.Response,
        *,
        endpoint: Deferred[str],
        secrets: Deferred[tuple[str, ...]],
    ) -> TokenSet:
        return TokenSet(access_token=response.json()["token"])


def test_a_flow_of_several_requests_is_driven_to_its_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/nonce":
            return httpx.Response(200, json={"nonce": "n-1"})
        return httpx.Response(200, json={"token": f"tok-for-{form(request)['nonce']}"})

    start = _TwoStep().begin(ctx_of(spec_of({"type": "none"})))
    assert run(start, handler).access_token == "tok-for-n-1"
