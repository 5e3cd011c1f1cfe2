"""The ``oauth1`` plugin without a network: its flows driven over httpx.MockTransport, its signatures checked.

The end-to-end tests against a real Authlib OAuth 1 provider are in ``tests/api/test_oauth1_e2e.py``.
"""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import httpx
import pytest
from authlib.oauth1.rfc5849.signature import verify_hmac_sha1
from authlib.oauth1.rfc5849.wrapper import OAuth1Request
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from authbridge.auth import AuthContext, Entered, RedirectExchange, TokenSet, api_request, plugin_for
from authbridge.auth._authlib import oauth1_sign, rsa_private_key
from authbridge.errors import CallbackError, ConnectionStateError, SpecError, TokenEndpointError
from authbridge.spec import Integration, load_spec
from authbridge.spec.destinations import move_problems
from authbridge.spec.validate import validate_spec
from tests.auth.flows import drive

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REDIRECT = "https://bridge.example/oauth/callback"
SECRET = "consumer-Secr3t"


def spec_of(**auth: typing.Any) -> Integration:
    return Integration.model_validate(
        {
            "key": "trello",
            "name": "Trello",
            "request": {"base_url": "https://api.trello.example/1"},
            "auth": {
                "type": "oauth1",
                "request_token_url": "https://trello.example/1/OAuthGetRequestToken",
                "authorization_url": "https://trello.example/1/OAuthAuthorizeToken",
                "access_token_url": "https://trello.example/1/OAuthGetAccessToken",
                "client_id": "ck",
                "client_secret": SECRET,
                **auth,
            },
        }
    )


def ctx_of(spec: Integration, **values: typing.Any) -> AuthContext:
    return AuthContext(spec, redirect_uri=REDIRECT, clock=lambda: NOW, **values)


def oauth_params(request: httpx.Request) -> dict[str, str]:
    header = request.headers["Authorization"].removeprefix("OAuth ")
    return {k: v.strip('"') for k, v in (p.strip().split("=", 1) for p in header.split(","))}


def test_three_legged_begin_asks_for_a_request_token_then_redirects() -> None:
    """The request token is asked with the callback (carrying the state); the secret stays out of the URL."""
    plugin = plugin_for("oauth1")
    spec = spec_of(authorize_params={"name": "AuthBridge", "expiration": "never"})
    start = plugin.begin(ctx_of(spec))
    assert isinstance(start, RedirectExchange) and "flow" not in repr(start)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="oauth_token=rt&oauth_token_secret=rts&oauth_callback_confirmed=true")

    redirect = drive(start.flow, handler)
    params = oauth_params(seen[0])
    assert seen[0].method == "POST" and params["oauth_consumer_key"] == "ck"
    assert params["oauth_callback"].startswith("https%3A%2F%2Fbridge.example%2Foauth%2Fcallback%3Fstate%3D")
    assert redirect.url == (
        "https://trello.example/1/OAuthAuthorizeToken?name=AuthBridge&expiration=never&oauth_token=rt"
    )
    assert json.loads(redirect.code_verifier or "") == ["rt", "rts"] and "rts" not in repr(redirect)


def test_callback_and_finish_exchange_the_verifier_for_the_token() -> None:
    """The callback must bring the flow's request token and a verifier; finish returns the token and its secret."""
    plugin = plugin_for("oauth1")
    ctx = ctx_of(spec_of())
    kept = json.dumps(["rt", "rts"])
    with pytest.raises(CallbackError, match="another request token"):
        plugin.callback(ctx, {"oauth_token": "other", "oauth_verifier": "v"}, kept)
    with pytest.raises(CallbackError, match="no oauth_verifier"):
        plugin.callback(ctx, {"oauth_token": "rt"}, kept)
    with pytest.raises(CallbackError, match="no request token"):
        plugin.callback(ctx, {"oauth_token": "rt", "oauth_verifier": "v"}, None)
    accepted = plugin.callback(ctx, {"oauth_token": "rt", "oauth_verifier": "v"}, kept)
    exchange = plugin.finish(ctx, accepted)
    assert exchange.hookable is False and "rts" in exchange.secrets

    def handler(request: httpx.Request) -> httpx.Response:
        params = oauth_params(request)
        assert params["oauth_token"] == "rt" and params["oauth_verifier"] == "v"
        return httpx.Response(200, text="oauth_token=at&oauth_token_secret=ats&user_id=42")

    tokens = drive(exchange.flow, handler)
    assert isinstance(tokens, TokenSet)
    assert (tokens.access_token, tokens.refresh_token, tokens.extra) == ("at", "ats", {"user_id": "42"})


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, f"oauth_problem=signature_invalid&echo={SECRET}", "answered 401: oauth_problem=signature_invalid"),
        (200, "<html>maintenance</html>", "without oauth_token and oauth_token_secret"),
        (200, "oauth_token=only", "without oauth_token and oauth_token_secret"),
        (500, "", "answered 500"),
    ],
)
def test_a_bad_access_token_answer_is_a_clear_error_without_secrets(status: int, body: str, message: str) -> None:
    """Refusals and unusable answers become TokenEndpointError naming the endpoint, never a secret."""
    plugin = plugin_for("oauth1")
    ctx = ctx_of(spec_of())
    exchange = plugin.finish(ctx, plugin.callback(ctx, {"oauth_token": "rt", "oauth_verifier": "v"}, '["rt","rts"]'))
    with pytest.raises(TokenEndpointError, match=message) as caught:
        drive(exchange.flow, lambda _request: httpx.Response(status, text=body))
    assert SECRET not in str(caught.value) and "rts" not in str(caught.value)
    assert caught.value.permanent is (400 <= status < 500)


def test_token_flow_takes_the_entered_token_and_signs_with_it() -> None:
    """Token-based: the user's token id and secret are the credentials; requests are signed with the realm."""
    plugin = plugin_for("oauth1")
    spec = Integration.model_validate(
        {
            "key": "netsuite",
            "name": "NetSuite",
            "parameters": [{"name": "accountId"}],
            "request": {"base_url": "https://123-sb1.suitetalk.api.netsuite.com"},
            "auth": {
                "type": "oauth1",
                "flow": "token",
                "client_id": "ck",
                "client_secret": SECRET,
                "signature_method": "HMAC-SHA256",
                "realm": "{accountId}",
            },
        }
    )
    assert [i.name for i in plugin.inputs(spec)] == ["token_id", "token_secret"]
    assert all(i.secret for i in plugin.inputs(spec))
    assert plugin.entered(spec) and not plugin.redirects(spec) and plugin.signs(spec)
    assert plugin.style(spec) == "oauth1 (token, HMAC-SHA256)" and plugin.client_app(spec) == ("ck", SECRET)
    inputs = {"token_id": "tid", "token_secret": "tsecret"}
    entered = plugin.begin(ctx_of(spec, parameters={"accountId": "123_SB1"}, inputs=inputs))
    assert isinstance(entered, Entered) and entered.access_token == "tid"
    ctx = ctx_of(spec, parameters={"accountId": "123_SB1"}, inputs=entered.inputs, access_token="tid")
    request = api_request(ctx, "GET", "/services/rest/record/v1/customer?limit=5")
    params = oauth_params(request)
    assert request.headers["Authorization"].startswith('OAuth realm="123_SB1"')
    assert params["oauth_signature_method"] == "HMAC-SHA256" and params["oauth_token"] == "tid"


def test_signing_needs_a_token_and_a_loadable_rsa_key() -> None:
    """No token yet, or an RSA method whose key is not a PEM key: a clear error that quotes no secret."""
    plugin = plugin_for("oauth1")
    spec = spec_of()
    request = httpx.Request("GET", "https://api.trello.example/1/members/me")
    with pytest.raises(ConnectionStateError, match=r"no OAuth 1\.0a token"):
        plugin.sign(ctx_of(spec), request)
    bad = spec_of(signature_method="RSA-SHA256")
    with pytest.raises(ConnectionStateError, match=r"not an unencrypted PEM private key") as caught:
        plugin.sign(ctx_of(bad, access_token="at", refresh_token="ats"), request)
    assert SECRET not in str(caught.value)


def test_a_spec_missing_what_its_flow_needs_is_refused_on_save_and_at_run_time() -> None:
    """validate names each missing field; a spec built without validation fails when used, not with a crash."""
    with pytest.raises(SpecError) as caught:
        validate_spec({"key": "x", "name": "X", "auth": {"type": "oauth1"}})
    paths = {e.path for e in caught.value.errors}
    assert {"auth.request_token_url", "auth.client_id", "auth.client_secret"} <= paths
    with pytest.raises(SpecError) as caught:
        validate_spec({"key": "x", "name": "X", "auth": {"type": "oauth1", "flow": "token"}})
    assert {e.path for e in caught.value.errors} == {"auth.client_id", "auth.client_secret"}
    bare = Integration.model_validate({"key": "x", "name": "X", "auth": {"type": "oauth1", "client_id": "a"}})
    with pytest.raises(SpecError):
        plugin_for("oauth1").begin(ctx_of(bare))
    with pytest.raises(ValueError, match="PLAINTEXT"):
        spec_of(signature_method="PLAINTEXT", signature_location="query")


def test_the_secret_is_masked_in_a_dump_and_its_hosts_must_be_pinned() -> None:
    """The consumer secret is write-only; a user-chosen host for the token URLs is refused."""
    dumped = spec_of().model_dump(mode="json")
    assert dumped["auth"]["client_secret"] == "********"
    with pytest.raises(SpecError, match="receives the client secret"):
        load_spec(
            """
key: x
name: X
parameters: [{name: host}]
auth:
  type: oauth1
  request_token_url: https://{host}/request
  authorization_url: https://x.example/authorize
  access_token_url: https://x.example/access
  client_id: a
  client_secret: b
"""
        )


class _Client:
    def get_client_secret(self) -> str:
        return "cs"


def _verifies(url: str, header: str, body: dict[str, str] | None) -> bool:
    """Authlib's server-side HMAC-SHA1 check of a request as received."""
    request = OAuth1Request("POST", url, body, {"Authorization": header})
    request.client = _Client()
    return bool(verify_hmac_sha1(request))


def test_form_bodies_are_signed_and_other_bodies_are_not() -> None:
    """RFC 5849 §3.4.1.3: form parameters enter the signature (a changed body fails); a JSON body does not."""
    url, header = oauth1_sign(
        "POST",
        "https://a.example/x?q=1",
        content_type="application/x-www-form-urlencoded; charset=utf-8",
        body=b"a=1&b=x+y",
        client_id="ck",
        client_secret="cs",
        signature_method="HMAC-SHA1",
    )
    assert header is not None and "oauth_body_hash" not in header
    assert _verifies(url, header, {"a": "1", "b": "x y"})
    assert not _verifies(url, header, {"a": "2", "b": "x y"})
    url, header = oauth1_sign(
        "POST",
        "https://a.example/x",
        content_type="application/json",
        body=b'{"a": 1}',
        client_id="ck",
        client_secret="cs",
        signature_method="HMAC-SHA1",
    )
    assert header is not None and "oauth_body_hash" not in header and _verifies(url, header, None)
    url, query_header = oauth1_sign(
        "GET",
        "https://a.example/x?q=1",
        content_type=None,
        body=b"",
        client_id="ck",
        client_secret="cs",
        signature_method="HMAC-SHA1",
        location="query",
    )
    assert query_header is None and dict(parse_qsl(url.split("?")[1]))["q"] == "1" and "oauth_signature=" in url


def test_a_plugin_refuses_another_types_spec() -> None:
    """Asking the oauth1 plugin about an oauth2 spec is a programming error, said as such."""
    other = Integration.model_validate({"key": "x", "name": "X", "auth": {"type": "api_token"}})
    with pytest.raises(TypeError, match=r"not an OAuth 1\.0a integration"):
        plugin_for("oauth1").redirects(other)


def test_a_non_rsa_private_key_is_refused() -> None:
    """An EC key with an RSA method: refused by name, the key never quoted."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    with pytest.raises(ValueError, match="is not an RSA private key"):
        rsa_private_key(pem)


def test_plaintext_puts_the_api_host_under_the_secret_host_rules() -> None:
    """PLAINTEXT sends the secret to the API: a user-chosen API host is refused; HMAC leaves it to the signature."""
    text = """
key: x
name: X
parameters: [{name: host}]
auth:
  type: oauth1
  flow: token
  client_id: a
  client_secret: b
  signature_method: %s
request: {base_url: "https://{host}/api"}
"""
    with pytest.raises(SpecError, match="receives the client secret"):
        load_spec(text % "PLAINTEXT")
    assert load_spec(text % "HMAC-SHA1").auth.type == "oauth1"


def test_a_kept_secret_does_not_move_to_a_new_token_host() -> None:
    """An update keeping the stored consumer secret (********) may not point its token URLs elsewhere."""
    old = spec_of()
    moved = spec_of(access_token_url="https://evil.example/access")
    problems = move_problems(old, moved, client_secret_kept=True, connections=0)
    assert [p.path for p in problems] == ["auth.access_token_url"]
    assert move_problems(old, spec_of(), client_secret_kept=True, connections=0) == []
    plain = spec_of(signature_method="PLAINTEXT")
    elsewhere = Integration.model_validate(
        {**plain.model_dump(mode="json", by_alias=True), "request": {"base_url": "https://evil.example"}}
    )
    assert [p.path for p in move_problems(plain, elsewhere, client_secret_kept=True, connections=0)] == [
        "request.base_url"
    ]


def test_reprs_show_no_secret() -> None:
    """The spec, the start of a flow and the redirect hide the consumer secret and the request token's secret."""
    spec = spec_of()
    start = plugin_for("oauth1").begin(ctx_of(spec))
    redirect = drive(
        typing.cast(RedirectExchange, start).flow,
        lambda _r: httpx.Response(
            200, text="oauth_token=rt&oauth_token_secret=rt-secret&oauth_callback_confirmed=true"
        ),
    )
    for shown in (repr(spec), str(spec), repr(start), repr(redirect), repr(ctx_of(spec, refresh_token="tok-secret"))):
        assert SECRET not in shown and "rt-secret" not in shown and "tok-secret" not in shown
