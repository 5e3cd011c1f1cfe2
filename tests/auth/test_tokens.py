"""Tests of token response parsing: bodies, paths, expiry, errors and their classification, and no leaks."""

from __future__ import annotations

import base64
import json
import typing
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, quote_plus

import httpx
import pytest

from authbridge.auth import MAX_BODY_BYTES, TokenSet, callback_fields, parse_token_response
from authbridge.auth.tokens import _two_headers
from authbridge.errors import TokenEndpointError
from authbridge.spec import Integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ENDPOINT = "https://id.example/oauth/token?tenant=t1"
ACCESS = "at-Zx81Qw0PLk5-distinct"
REFRESH = "rt-Mn44Hh7Yy-distinct"
CLIENT_SECRET = "cs-Secr3t:+/zq9XKJ"


def make(token_response: dict[str, typing.Any] | None = None, **auth: typing.Any) -> Integration:
    """An OAuth 2.0 integration with the given token_response block."""
    block: dict[str, typing.Any] = {
        "type": "oauth2",
        "grant_type": "client_credentials",
        "token_url": "https://id.example/oauth/token",
        "client_id": "cid",
        "client_secret": CLIENT_SECRET,
        **auth,
    }
    if token_response is not None:
        block["token_response"] = token_response
    return Integration.model_validate({"key": "acme", "name": "Acme", "auth": block})


def response(status: int = 200, **kwargs: typing.Any) -> httpx.Response:
    """A token endpoint answer to a POST of ENDPOINT."""
    return httpx.Response(status, request=httpx.Request("POST", ENDPOINT), **kwargs)


def parse(answer: httpx.Response, integration: Integration | None = None, **kwargs: typing.Any) -> TokenSet:
    """parse_token_response at NOW."""
    return parse_token_response(integration or make(), answer, now=NOW, endpoint=ENDPOINT, **kwargs)


def failure(answer: httpx.Response, integration: Integration | None = None, **kwargs: typing.Any) -> TokenEndpointError:
    """The TokenEndpointError parsing ``answer`` raises; it never shows a secret."""
    with pytest.raises(
        TokenEndpointError, match=r"^acme: token endpoint https://id\.example/oauth/token answered "
    ) as caught:
        parse(answer, integration, **kwargs)
    for text in (str(caught.value), repr(caught.value)):
        for secret in (ACCESS, REFRESH, CLIENT_SECRET, "tenant=t1"):
            assert secret not in text
    return caught.value


def jwt(payload: dict[str, typing.Any]) -> str:
    """An unsigned-looking JWT with the given payload."""

    def part(data: dict[str, typing.Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(payload)}.c2lnbmF0dXJl"


def test_json_body() -> None:
    """A standard JSON answer gives every field; expiry counts from now."""
    body = {
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "a b",
    }
    token = parse(response(json=body))
    assert (token.access_token, token.refresh_token, token.token_type) == (ACCESS, REFRESH, "Bearer")
    assert token.expires_at == NOW + timedelta(hours=1)
    assert token.expires_at.tzinfo is UTC
    assert token.scopes == ["a", "b"]
    assert token.raw == body
    assert token.extra == {}
    assert ACCESS not in repr(token) and REFRESH not in repr(token)


def test_form_body_when_json_is_expected() -> None:
    """A form answer (GitHub without Accept: application/json) is read as a form."""
    content = f"access_token={ACCESS}&scope=repo%2Cgist&token_type=bearer&expires_in=28800"
    token = parse(response(content=content, headers={"content-type": "application/x-www-form-urlencoded"}))
    assert token.access_token == ACCESS
    assert token.scopes == ["repo", "gist"]
    assert token.expires_at == NOW + timedelta(seconds=28800)


def test_form_body_configured() -> None:
    """body: form reads a form answer even without a content type."""
    token = parse(response(content=f"access_token={ACCESS}&expires_in=60"), make({"body": "form"}))
    assert token.access_token == ACCESS


def test_text_body_is_the_token() -> None:
    """body: text takes the whole stripped body as the access token; the custom ttl applies."""
    token = parse(response(text=f"  {ACCESS}\n"), make({"body": "text"}), default_ttl=timedelta(minutes=20))
    assert token.access_token == ACCESS
    assert token.expires_at == NOW + timedelta(minutes=20)


def test_slack_nested_access_token() -> None:
    """A dotted path finds Slack's user token; extras keep authed_user without its token."""
    body = {
        "ok": True,
        "authed_user": {"id": "U1", "scope": "chat:write", "access_token": ACCESS},
        "team": {"id": "T1"},
    }
    integration = make({"access_token": ["access_token", "authed_user.access_token"], "scope": ["authed_user.scope"]})
    token = parse(response(json=body), integration)
    assert token.access_token == ACCESS
    assert token.scopes == ["chat:write"]
    assert token.extra == {"ok": True, "authed_user": {"id": "U1", "scope": "chat:write"}, "team": {"id": "T1"}}


def test_scope_as_list() -> None:
    """A scope given as a list is kept as a list."""
    assert parse(response(json={"access_token": ACCESS, "scope": ["x", "y"]})).scopes == ["x", "y"]


def test_extras_keep_other_fields_but_no_secrets() -> None:
    """Fields like Salesforce's instance_url go to extra; id_token and the like stay only in raw."""
    body = {"access_token": ACCESS, "instance_url": "https://na1.salesforce.com", "id": "u1", "id_token": "jwt-x"}
    token = parse(response(json=body))
    assert token.extra == {"instance_url": "https://na1.salesforce.com", "id": "u1"}
    assert token.raw["id_token"] == "jwt-x"


def test_previous_refresh_token_is_kept() -> None:
    """An answer without a refresh token keeps the previous one; a new one replaces it."""
    assert parse(response(json={"access_token": ACCESS}), previous_refresh_token="old").refresh_token == "old"
    body = {"access_token": ACCESS, "refresh_token": REFRESH}
    assert parse(response(json=body), previous_refresh_token="old").refresh_token == REFRESH


@pytest.mark.parametrize(
    ("block", "body", "expected"),
    [
        (None, {"expires_in": "3600"}, NOW + timedelta(hours=1)),
        (None, {"expires_in": 90.5}, NOW + timedelta(seconds=90.5)),
        ({"expires_in": {"path": "ttl", "unit": "ms"}}, {"ttl": 120000}, NOW + timedelta(minutes=2)),
        (
            {"expires_at": {"path": "exp", "format": "unix"}},
            {"exp": 1772370000},
            datetime.fromtimestamp(1772370000, UTC),
        ),
        (
            {"expires_at": {"path": "exp", "format": "unix_ms"}},
            {"exp": 1772370000123},
            datetime.fromtimestamp(1772370000.123, UTC),
        ),
        (
            {"expires_at": {"path": "at", "format": "iso8601"}},
            {"at": "2026-03-01T14:00:00+01:00"},
            NOW + timedelta(hours=1),
        ),
        ({"expires_at": {"path": "at", "format": "iso8601"}}, {"at": "2026-03-01T13:00:00"}, NOW + timedelta(hours=1)),
        ({"expires_at": "at"}, {"at": 1772370000, "expires_in": 5}, datetime.fromtimestamp(1772370000, UTC)),
        ({"expires_at": "at"}, {"expires_in": 5}, NOW + timedelta(seconds=5)),
        ({"default_ttl": "45m"}, {}, NOW + timedelta(minutes=45)),
        (None, {"expires_in": 0}, None),
        (None, {}, None),
    ],
)
def test_expiry(block: dict[str, typing.Any] | None, body: dict[str, typing.Any], expected: datetime | None) -> None:
    """Expiry comes from expires_at, else expires_in (seconds, ms, numeric strings), else a default; or is unknown."""
    token = parse(response(json={"access_token": ACCESS, **body}), make(block))
    assert token.expires_at == expected
    assert token.expires_at is None or token.expires_at.utcoffset() == timedelta(0)


def test_jwt_exp_when_no_lifetime_is_given() -> None:
    """A JWT access token's exp is the expiry when the answer states none; it beats the default ttl."""
    token = jwt({"sub": "u", "exp": 1772373600})
    assert parse(response(json={"access_token": token}), default_ttl=timedelta(minutes=5)).expires_at == datetime(
        2026, 3, 1, 14, 0, tzinfo=UTC
    )


def test_not_a_jwt_falls_back_to_default_ttl() -> None:
    """A token with dots that is not a JWT is ignored as such; the default ttl applies."""
    token = parse(response(json={"access_token": "a.b.c"}), default_ttl=timedelta(minutes=5))
    assert token.expires_at == NOW + timedelta(minutes=5)


@pytest.mark.parametrize("value", [-5, "soon", "NaN", True, [1], 1e300])
def test_unusable_expires_in(value: typing.Any) -> None:
    """A negative, non-numeric, NaN or absurd expires_in is an error naming the field."""
    error = failure(response(json={"access_token": ACCESS, "expires_in": value}))
    assert "expires_in" in str(error)


def test_unusable_expires_at() -> None:
    """An expires_at that is not ISO 8601 is an error naming the field."""
    integration = make({"expires_at": {"path": "valid_until", "format": "iso8601"}})
    assert "valid_until" in str(
        failure(response(json={"access_token": ACCESS, "valid_until": "tomorrow"}), integration)
    )


def test_nan_expires_in_in_json() -> None:
    """JSON's non-standard NaN literal is refused as expires_in."""
    content = f'{{"access_token": "{ACCESS}", "expires_in": NaN}}'
    assert "expires_in" in str(failure(response(content=content, headers={"content-type": "application/json"})))


def test_html_page_with_200() -> None:
    """An HTML page is not a token, whatever the status."""
    error = failure(response(text="<!doctype html><p>Sign in</p>", headers={"content-type": "text/html"}))
    assert (
        str(error)
        == "acme: token endpoint https://id.example/oauth/token answered an HTML page, not a token (status 200)"
    )
    assert (error.status, error.permanent, error.endpoint, error.integration) == (
        200,
        False,
        "https://id.example/oauth/token",
        "acme",
    )


def test_empty_body() -> None:
    """An empty answer is an error."""
    assert "empty body" in str(failure(response(content=b"")))


def test_oversized_body() -> None:
    """An answer over 1 MiB is refused."""
    assert "over 1 MiB" in str(failure(response(content=b"{" + b" " * MAX_BODY_BYTES + b"}")))


def test_garbage_body_names_the_content_type() -> None:
    """A body that is neither JSON nor a form names its content type."""
    content = f"%%% nope {ACCESS} %%%".encode()
    error = failure(response(content=content, headers={"content-type": "application/octet-stream"}))
    assert "application/octet-stream" in str(error)


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_json(depth: int) -> None:
    """JSON nested absurdly deep is refused, not a crash."""
    content = '{"access_token": "t", "x": ' + "[" * depth + "]" * depth + "}"
    assert "nested too deeply" in str(failure(response(content=content)))


def test_null_error_is_not_a_refusal() -> None:
    """An answer with ``error: null`` and ``ok: true`` is a success."""
    assert parse(response(json={"access_token": ACCESS, "error": None, "ok": True})).access_token == ACCESS


def test_json_that_is_not_an_object() -> None:
    """A JSON array is not a token answer."""
    assert "not an object" in str(failure(response(json=[ACCESS])))


def test_missing_access_token_lists_the_paths() -> None:
    """No access token at any path is an error listing the paths tried."""
    integration = make({"access_token": ["access_token", "authed_user.access_token"]})
    error = failure(response(json={"token_type": "bearer"}), integration)
    assert "access_token, authed_user.access_token" in str(error)


def test_invalid_grant_is_permanent() -> None:
    """400 invalid_grant is permanent; the message has the code and the redacted description."""
    body = {"error": "invalid_grant", "error_description": f"refresh_token={REFRESH} is expired"}
    error = failure(response(400, json=body), previous_refresh_token=REFRESH)
    assert (error.error, error.status, error.permanent) == ("invalid_grant", 400, True)
    assert str(error) == (
        "acme: token endpoint https://id.example/oauth/token answered 400 invalid_grant: refresh_token=*** is expired"
    )


def test_secret_echoed_in_description_is_scrubbed() -> None:
    """A description quoting the client secret or the refresh token shows neither."""
    body = {"error": "invalid_client", "error_description": f"bad secret {CLIENT_SECRET} for token {REFRESH}"}
    error = failure(response(401, json=body), previous_refresh_token=REFRESH)
    assert error.permanent
    assert "bad secret *** for token ***" in str(error)


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: quote(s, safe=""),
        quote_plus,
        lambda s: json.dumps(s)[1:-1],
        lambda s: base64.b64encode(f"cid:{quote_plus(s)}".encode()).decode(),
        lambda s: base64.b64encode(f"cid:{s}".encode()).decode(),
    ],
    ids=["quote", "quote_plus", "json", "basic-form-encoded", "basic-raw"],
)
def test_secret_echoed_encoded_is_scrubbed(encode: typing.Callable[[str], str]) -> None:
    """The client secret echoed percent-encoded, form-encoded, JSON-escaped or in a Basic header is scrubbed."""
    echoed = encode(CLIENT_SECRET)
    body = {"error": "invalid_client", "error_description": f"bad client {echoed} here"}
    error = failure(response(401, json=body))
    assert "bad client *** here" in str(error)
    assert echoed not in str(error) and echoed not in repr(error)


def test_long_description_is_truncated() -> None:
    """Descriptions are cut to 300 characters."""
    error = failure(response(400, json={"error": "invalid_request", "error_description": "x" * 5000}))
    assert str(error).endswith("x…")
    assert len(str(error).partition(": ")[2].partition(": ")[2]) == 300


@pytest.mark.parametrize(
    ("status", "body", "permanent"),
    [
        (503, {"error": "temporarily_unavailable"}, False),
        (503, None, False),
        (429, {"error": "slow_down"}, False),
        (429, None, False),
        (408, None, False),
        (400, {"error": "temporarily_unavailable"}, False),
        (400, {"error": "invalid_request"}, True),
        (401, None, True),
        (403, {"error": "access_denied"}, True),
        (404, None, False),
    ],
)
def test_error_classification(status: int, body: dict[str, str] | None, permanent: bool) -> None:
    """5xx, 429, 408 and transient codes are transient; 400/401 and the refusal codes are permanent."""
    answer = response(status, json=body) if body else response(status, text="oops")
    error = failure(answer)
    assert (error.status, error.permanent) == (status, permanent)
    assert str(error).startswith(f"acme: token endpoint https://id.example/oauth/token answered {status}")


def test_html_error_page_is_transient_on_5xx() -> None:
    """An HTML 502 page says so and is transient."""
    error = failure(response(502, text="<html>Bad gateway</html>"))
    assert "HTML page, not a token (status 502)" in str(error)
    assert not error.permanent


def test_github_200_error() -> None:
    """A 200 answer with an error (GitHub) is a refusal."""
    body = {"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}
    error = failure(response(json=body))
    assert (error.error, error.status, error.permanent) == ("bad_verification_code", 200, True)


def test_github_200_error_as_form() -> None:
    """GitHub's form-encoded 200 error is a refusal too."""
    content = "error=bad_refresh_token&error_description=The+refresh+token+passed+is+incorrect+or+expired."
    error = failure(response(content=content, headers={"content-type": "application/x-www-form-urlencoded"}))
    assert error.error == "bad_refresh_token"
    assert "incorrect or expired" in str(error)


def test_slack_ok_false() -> None:
    """Slack's ok: false is a refusal with its error code."""
    error = failure(response(json={"ok": False, "error": "invalid_code"}))
    assert (error.error, error.permanent) == ("invalid_code", True)
    assert str(error).endswith("answered 200 invalid_code")


def test_ok_false_without_code() -> None:
    """ok: false without an error code is still a refusal."""
    assert failure(response(json={"ok": False, "access_token": ACCESS})).error == "not_ok"


def test_custom_token_integration() -> None:
    """A custom token integration's answer is parsed with its own token_response block and ttl."""
    integration = Integration.model_validate(
        {
            "key": "tok",
            "name": "Tok",
            "auth": {
                "type": "custom_token",
                "token_url": "https://a.example/s",
                "token_response": {"access_token": "data.jwt"},
            },
        }
    )
    token = parse(response(json={"data": {"jwt": ACCESS}}), integration, default_ttl=timedelta(hours=2))
    assert token.access_token == ACCESS
    assert token.expires_at == NOW + timedelta(hours=2)


def test_callback_fields_keeps_captured_parameters() -> None:
    """callback.capture keeps the listed query parameters that are present."""
    integration = make(grant_type="authorization_code", callback={"capture": ["realmId", "region"]})
    query = {"code": "c", "state": "s", "realmId": "123"}
    assert callback_fields(integration, query) == {"realmId": "123"}


def test_retry_after_is_carried_on_transient_errors() -> None:
    """A 429 or 503 with Retry-After (seconds or an HTTP date) tells the refresher how long to wait."""
    from datetime import UTC, datetime

    from authbridge.spec import load_spec

    spec = load_spec("key: x\nname: X\nauth: {type: custom_token, token_url: 'https://x.example/t'}\n")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for headers, expected in [
        ({"Retry-After": "120"}, 120.0),
        ({"Retry-After": "Thu, 01 Jan 2026 00:01:00 GMT"}, 60.0),
        ({}, None),
    ]:
        response = httpx.Response(503, json={"error": "temporarily_unavailable"}, headers=headers)
        with pytest.raises(TokenEndpointError, match="answered 503 temporarily_unavailable") as info:
            parse_token_response(spec, response, now=now, endpoint="https://x.example/t")
        assert not info.value.permanent and info.value.retry_after == expected


# -- token values, encodings and types that are refused ------------------------------------------------
# End to end (nothing stored): tests/api/test_connections_e2e.py::test_unusable_token_answers_store_nothing


@pytest.mark.parametrize("bad", ["\r", "\n", "\0", "\x1b", "\x7f", "\x85", "\t"])
@pytest.mark.parametrize("field", ["access_token", "refresh_token"])
def test_control_characters_in_tokens_are_refused(bad: str, field: str) -> None:
    """A token holding CR, LF, NUL or any other control character is refused, naming the field, not the value."""
    body = {"access_token": ACCESS, "refresh_token": REFRESH, field: f"ab{bad}cd-{field}"}
    error = failure(response(json=body))
    assert f"an unusable {field.replace('_', ' ')} (it holds a control character)" in str(error)
    assert f"ab{bad}cd" not in str(error)


def test_control_characters_in_form_and_text_answers_are_refused() -> None:
    """The same for a form answer (percent-encoded LF) and a text answer (a line break inside the token)."""
    assert "control character" in str(failure(response(text="access_token=ab%0D%0Acd&token_type=bearer")))
    text_spec = make({"body": "text"})
    assert "control character" in str(failure(response(text="ab\ncd"), text_spec))
    assert parse(response(text="  plain-token\n"), text_spec).access_token == "plain-token"


def test_json_that_is_not_utf8_is_refused() -> None:
    """A token answer that is not valid UTF-8 is refused rather than read with replacement characters."""
    body = b'{"access_token": "tok\xff\xfe", "token_type": "bearer"}'
    assert "a body that is not valid UTF-8 (status 200)" in str(failure(response(content=body)))
    latin1 = response(content=body, headers={"content-type": "application/json; charset=latin-1"})
    assert "not valid UTF-8" in str(failure(latin1))
    bom = b"\xef\xbb\xbf" + json.dumps({"access_token": "t\u00e9"}).encode()
    assert parse(response(content=bom)).access_token == "t\u00e9"


@pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER", None])
def test_bearer_or_no_token_type_is_accepted(token_type: str | None) -> None:
    """``bearer`` in any case (GitHub, Salesforce) or no token_type at all is accepted and kept as sent."""
    body = {"access_token": ACCESS, **({"token_type": token_type} if token_type else {})}
    assert parse(response(json=body)).token_type == token_type


@pytest.mark.parametrize("token_type", ["mac", "DPoP", "N_A", "bearer "])
def test_unknown_token_type_is_refused(token_type: str) -> None:
    """Any other token_type is refused by default (RFC 6749 §7.1), with how to accept it."""
    error = failure(response(json={"access_token": ACCESS, "token_type": token_type}))
    assert "an unusable token_type" in str(error)
    assert "token_response.accept_token_types" in str(error)


def test_accept_token_types_names_the_accepted_types() -> None:
    """An integration listing its types accepts those (any case) and refuses the rest, bearer included."""
    spec = make({"accept_token_types": ["MAC", "dpop"]})
    assert parse(response(json={"access_token": ACCESS, "token_type": "mac"}), spec).token_type == "mac"
    assert parse(response(json={"access_token": ACCESS, "token_type": "DPoP"}), spec).token_type == "DPoP"
    error = failure(response(json={"access_token": ACCESS, "token_type": "bearer"}), spec)
    assert "'bearer' is not one the integration accepts: MAC, dpop" in str(error)


@pytest.mark.parametrize("value", [[], [""], ["bad type"], ["a\nb"]])
def test_accept_token_types_must_be_names(value: list[str]) -> None:
    """The accepted types are a non-empty list of visible ASCII names."""
    with pytest.raises(ValueError, match="accept_token_types"):
        make({"accept_token_types": value})


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"Content-Type", b"application/json; charset=utf-8")],
        [(b"content-type", b"text/html"), (b"X-Other", b"1"), (b"RETRY-AFTER", b"120")],
        [(b"Content-Type", b"application/json"), (b"Content-Type", b"text/plain"), (b"Retry-After", b"5")],
        [(b"Retry-After", b"Wed, 21 Oct 2015 07:28:00 GMT"), (b"Retry-After", b"7")],
        [(b"Content-Type", "application/jsön".encode()), (b"X-Name", "é".encode())],
        [(b"Content-Type", "text/plain; x=\xe9".encode("latin-1"))],
    ],
)
def test_the_two_headers_read_are_those_httpx_gives(headers: list[tuple[bytes, bytes]]) -> None:
    """Content-Type and Retry-After, found in one pass, read as ``response.headers.get`` reads them."""
    response = httpx.Response(200, headers=headers)
    assert _two_headers(response) == (
        response.headers.get("content-type", ""),
        response.headers.get("retry-after"),
    )
