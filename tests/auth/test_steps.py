"""Multi-step token requests (``custom_token`` with ``steps``), driven over httpx.MockTransport as the broker does.

The same flows against a real provider on loopback, through the running app: ``tests/api/test_token_steps_e2e.py``.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from authbridge.auth import TokenExchange, TokenSet, plugin_for
from authbridge.auth.steps import MAX_CAPTURE_LENGTH, step_flow
from authbridge.errors import TemplateError, TokenEndpointError, UpstreamError
from tests.auth.test_plugins import NOW, ctx_of, run, spec_of

NONCE = "nonce-Value-0123456789"
SESSION = "sess-Value-abcdefghij"


def steps_spec(*steps: dict[str, typing.Any], **auth: typing.Any) -> typing.Any:
    return spec_of({"type": "custom_token", "steps": list(steps), **auth}, parameters=[{"name": "user"}])


NONCE_STEP = {"name": "nonce", "url": "https://acme.example/nonce", "method": "GET", "capture": {"nonce": "data.nonce"}}
LOGIN_STEP = {
    "name": "login",
    "url": "https://acme.example/login/{captured.nonce}",
    "body": "json",
    "headers": {"X-Nonce": "{captured.nonce}"},
    "params": {"user": "{user}", "nonce": "{captured.nonce}", "remember": True},
}


def provider(seen: list[httpx.Request], **answers: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        name = request.url.path.split("/")[1]
        if name in answers:
            return answers[name]
        if name == "nonce":
            return httpx.Response(200, json={"data": {"nonce": NONCE}})
        return httpx.Response(200, json={"access_token": SESSION, "expires_in": 600, "user_id": 7})

    return handler


def flow_of(spec: typing.Any, **values: typing.Any) -> typing.Any:
    return plugin_for(spec.auth).begin(ctx_of(spec, parameters={"user": "alice"}, **values))


def test_each_step_uses_what_the_earlier_ones_captured() -> None:
    """The login step carries the nonce in its path, header and JSON body; the last answer is the token."""
    seen: list[httpx.Request] = []
    tokens = run(flow_of(steps_spec(NONCE_STEP, LOGIN_STEP)), provider(seen))
    assert [r.url.path for r in seen] == ["/nonce", f"/login/{NONCE}"]
    login = seen[1]
    assert login.headers["x-nonce"] == NONCE
    assert json.loads(login.content) == {"user": "alice", "nonce": NONCE, "remember": True}
    assert tokens.access_token == SESSION
    assert tokens.expires_at == NOW + timedelta(seconds=600)
    assert tokens.extra == {"user_id": 7}


def test_refresh_runs_every_step_again() -> None:
    """A refresh is the whole sequence again (a new nonce each time)."""
    spec = steps_spec(NONCE_STEP, LOGIN_STEP)
    seen: list[httpx.Request] = []
    run(plugin_for(spec.auth).refresh(ctx_of(spec, parameters={"user": "alice"})), provider(seen))
    assert [r.url.path.split("/")[1] for r in seen] == ["nonce", "login"]


@pytest.mark.parametrize(
    ("capture", "answer"),
    [
        ({"header": "X-Session"}, httpx.Response(204, headers={"X-Session": SESSION})),
        ({"form": "sid"}, httpx.Response(200, text=f"sid={SESSION}&x=1")),
        (
            {"cookie": "sid"},
            httpx.Response(
                302, headers=[("Set-Cookie", "other=1; Path=/"), ("Set-Cookie", f"sid={SESSION}; HttpOnly")]
            ),
        ),
        ({"json": "session.id"}, httpx.Response(200, json={"session": {"id": SESSION}})),
        ({"json": "sessions.0"}, httpx.Response(200, json={"sessions": [SESSION]})),
    ],
    ids=["header", "form", "cookie", "json", "json-list"],
)
def test_the_token_may_be_a_captured_value(capture: dict[str, str], answer: httpx.Response) -> None:
    """``token_response.access_token: captured.x`` takes the token from a header, form field, cookie or JSON path."""
    login = {**LOGIN_STEP, "capture": {"session": capture}, "expect_status": [200, 204, 302]}
    spec = steps_spec(NONCE_STEP, login, token_response={"access_token": "captured.session"}, ttl="15m")
    tokens = run(flow_of(spec), provider([], login=answer))
    assert tokens.access_token == SESSION
    assert tokens.expires_at == NOW + timedelta(minutes=15)
    assert "captured" not in tokens.extra and "captured" not in tokens.raw
    assert NONCE not in repr(tokens) + json.dumps(tokens.raw) + json.dumps(tokens.extra)


@pytest.mark.parametrize(
    ("capture", "answer"),
    [
        ({"json": "data.nonce.deeper"}, httpx.Response(200, json={"data": {"nonce": "x"}})),
        ({"form": "nonce"}, httpx.Response(200, text="&".join(f"f{i}=1" for i in range(1001)))),
        ({"cookie": "nonce"}, httpx.Response(200, headers={"Set-Cookie": 'nonce="unterminated'})),
        ({"header": "X-Nonce"}, httpx.Response(200, headers={"X-Nonce": ""})),
    ],
    ids=["json-past-a-leaf", "form-too-many-fields", "cookie-malformed", "header-empty"],
)
def test_a_value_not_where_the_capture_says_is_missing(capture: dict[str, str], answer: httpx.Response) -> None:
    """A path past a leaf, an oversized form, a malformed cookie or an empty header captures nothing."""
    step = {**NONCE_STEP, "capture": {"nonce": capture}}
    with pytest.raises(TokenEndpointError, match=r"step 1 \(nonce\).*to capture as nonce"):
        run(flow_of(steps_spec(step, LOGIN_STEP)), provider([], nonce=answer))


def test_a_numeric_json_value_is_captured_as_text() -> None:
    """A number at the path is captured as its text."""
    step = {**NONCE_STEP, "capture": {"nonce": "data.n"}}
    seen: list[httpx.Request] = []
    run(flow_of(steps_spec(step, LOGIN_STEP)), provider(seen, nonce=httpx.Response(200, json={"data": {"n": 12345}})))
    assert seen[1].headers["x-nonce"] == "12345"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(200, json={"data": {}}), "no json data.nonce to capture as nonce (status 200)"),
        (httpx.Response(200, json={"data": {"nonce": True}}), "no json data.nonce to capture as nonce"),
        (httpx.Response(200, text="<html>nope</html>"), "no json data.nonce to capture as nonce"),
        (httpx.Response(200, content=b"\xff\xfe"), "no json data.nonce to capture as nonce"),
        (httpx.Response(200, json={"data": {"nonce": "a\r\nX-Evil: 1"}}), "an unusable nonce (it holds a control"),
        (
            httpx.Response(200, json={"data": {"nonce": "n" * (MAX_CAPTURE_LENGTH + 1)}}),
            f"an unusable nonce (it is over {MAX_CAPTURE_LENGTH} characters)",
        ),
        (httpx.Response(503, json={"error": "temporarily_unavailable"}), "answered 503 temporarily_unavailable"),
        (httpx.Response(200, json={"data": {"nonce": "short"}}), "an unusable nonce (it does not match its pattern)"),
    ],
    ids=["absent", "boolean", "html", "not-utf8", "crlf", "huge", "refused", "pattern"],
)
def test_a_failing_first_step_says_which_step_and_why(answer: httpx.Response, expected: str) -> None:
    """The error names the step, its endpoint and what was wrong; the login step is never sent."""
    step = {**NONCE_STEP, "capture": {"nonce": {"json": "data.nonce", "pattern": "[A-Za-z0-9-]{8,}"}}}
    seen: list[httpx.Request] = []
    with pytest.raises(TokenEndpointError) as info:
        run(flow_of(steps_spec(step, LOGIN_STEP)), provider(seen, nonce=answer))
    message = info.value.message
    assert message.startswith("acme: step 1 (nonce): token endpoint https://acme.example/nonce answered")
    assert expected in message
    assert "\r" not in message and "X-Evil" not in message
    assert len(seen) == 1


def test_a_refused_second_step_names_it_and_hides_the_captured_value() -> None:
    """A refusal quoting the nonce back is scrubbed; the endpoint's path (which holds the nonce) is masked too."""
    refusal = httpx.Response(401, json={"error": "invalid_nonce", "error_description": f"nonce {NONCE} was replayed"})
    with pytest.raises(TokenEndpointError) as info:
        run(flow_of(steps_spec(NONCE_STEP, LOGIN_STEP)), provider([], login=refusal))
    message = info.value.message
    assert message.startswith("acme: step 2 (login): token endpoint https://acme.example/login/*** answered 401")
    assert "invalid_nonce" in message and "replayed" in message
    assert NONCE not in message and NONCE not in (info.value.endpoint or "")
    assert info.value.permanent is True and info.value.status == 401


def test_an_unexpected_success_status_is_refused() -> None:
    """A 200 where the step expects its 302 (a login that did not redirect) fails, naming what was expected."""
    step = {**NONCE_STEP, "expect_status": 302}
    with pytest.raises(TokenEndpointError, match=r"step 1 \(nonce\).*a status it does not expect \(expected 302\)"):
        run(flow_of(steps_spec(step, LOGIN_STEP)), provider([]))


def test_the_last_answer_without_a_token_names_the_last_step() -> None:
    """The token response is read per token_response; its failure names the last step."""
    with pytest.raises(TokenEndpointError, match=r"step 2 \(login\).*no access token"):
        run(flow_of(steps_spec(NONCE_STEP, LOGIN_STEP)), provider([], login=httpx.Response(200, json={"x": 1})))


def test_a_missing_captured_token_names_the_last_step() -> None:
    """A token taken from a capture that the answer lacks fails at the capture."""
    login = {**LOGIN_STEP, "capture": {"session": {"cookie": "sid"}}}
    spec = steps_spec(NONCE_STEP, login, token_response={"access_token": "captured.session"})
    with pytest.raises(TokenEndpointError, match=r"step 2 \(login\).*no cookie sid to capture as session"):
        run(flow_of(spec), provider([], login=httpx.Response(200, headers={"Set-Cookie": "sid=\x7f; bad"})))


def test_a_transport_failure_thrown_in_is_renamed_for_the_step() -> None:
    """The broker throws an UpstreamError into the flow; it comes out naming the step, the nonce scrubbed."""
    exchange = flow_of(steps_spec(NONCE_STEP, LOGIN_STEP))
    flow = exchange.flow
    next(flow)
    second = flow.send(httpx.Response(200, json={"data": {"nonce": NONCE}}))
    failure = UpstreamError(
        f"acme: {second.url} sent no complete answer within 10 s", integration="acme", endpoint=str(second.url)
    )
    with pytest.raises(UpstreamError) as info:
        flow.throw(failure)
    assert type(info.value) is UpstreamError
    assert (
        info.value.message == "acme: step 2 (login): https://acme.example/login/*** sent no complete answer within 10 s"
    )
    assert info.value.endpoint == "https://acme.example/login/***"


def test_a_template_failure_names_the_step_field() -> None:
    """A step whose template cannot render says which step's field."""
    spec = steps_spec({**NONCE_STEP, "headers": {"X-User": "{user}"}}, LOGIN_STEP)
    exchange = plugin_for(spec.auth).begin(ctx_of(spec))
    assert isinstance(exchange, TokenExchange)
    with pytest.raises(TemplateError, match=r"auth\.steps\.0\.headers\.X-User: needs user"):
        next(exchange.flow)


def test_step_flow_needs_steps() -> None:
    """Only a custom token with steps has a step flow."""
    with pytest.raises(TypeError, match="has no token steps"):
        next(step_flow(ctx_of(spec_of({"type": "custom_token", "token_url": "https://a.example/t"})), _never))


def _never(*_args: object) -> TokenSet:
    raise AssertionError("not reached")


def test_inputs_come_from_the_steps() -> None:
    """username and password used in a step are asked for at connect time."""
    step = {**LOGIN_STEP, "params": {"u": "{username}", "p": "{password}"}}
    spec = steps_spec(NONCE_STEP, step)
    assert [i.name for i in plugin_for(spec.auth).inputs(spec)] == ["username", "password"]


def test_a_step_signs_its_jwt_and_uses_it_as_jwt() -> None:
    """A step's ``jwt`` block is signed at the clock (claims may use captures) and sent as ``{jwt}``; it verifies."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    app = {
        "name": "installation",
        "url": "https://acme.example/login",
        "jwt": {"key": "{app_key}", "claims": {"iss": "{user}", "nonce": "{captured.nonce}"}, "ttl": "9m"},
        "headers": {"Authorization": "Bearer {jwt}"},
    }
    spec = spec_of(
        {"type": "custom_token", "steps": [NONCE_STEP, app]},
        parameters=[{"name": "user"}, {"name": "app_key", "secret": True}],
    )
    seen: list[httpx.Request] = []
    exchange = plugin_for(spec.auth).begin(ctx_of(spec, parameters={"user": "4242", "app_key": pem}))
    assert isinstance(exchange, TokenExchange)
    run(exchange, provider(seen))
    assertion = seen[1].headers["authorization"].removeprefix("Bearer ")
    public = RSAKey.import_key(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    claims = jwt.decode(assertion, public, algorithms=["RS256"]).claims
    assert claims["iss"] == "4242" and claims["nonce"] == NONCE
    assert claims["exp"] - claims["iat"] == 540 and claims["iat"] == int(NOW.timestamp())
