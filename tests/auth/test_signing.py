"""The signing auth types, request by request: AWS SigV4 checked against botocore's signer, HMAC against an
independent recomputation. The same requests through a running AuthBridge: tests/proxy/test_signing_e2e.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import typing
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote_to_bytes

import httpx
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from authbridge.auth import AuthContext, api_request, plugin_for
from authbridge.auth.plugin import Entered
from authbridge.auth.signing import strict, strict_path, strict_query
from authbridge.errors import ConnectionStateError, ParameterError, SpecError, TemplateError, UnsafeValueError
from authbridge.spec import check_parameter_values, load_spec, validate_spec

NOW = datetime(2026, 12, 3, 13, 0, 5, tzinfo=UTC)
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEBYaDH/+session=="


def aws_spec(**auth: object) -> typing.Any:
    block = {"type": "aws_sigv4", "region": "{region}", "service": "{service}", **auth}
    return validate_spec(
        {
            "key": "aws",
            "name": "AWS",
            "parameters": [{"name": "region", "required": True}, {"name": "service", "required": True}],
            "auth": block,
            "request": {"base_url": "https://{service}.{region}.amazonaws.com"},
        }
    )


def aws_ctx(
    spec: typing.Any, *, token: str | None = None, region: str = "eu-west-1", service: str = "sts"
) -> AuthContext:
    inputs = {"access_key_id": KEY_ID, "secret_access_key": SECRET}
    if token:
        inputs["session_token"] = token
    return AuthContext(
        integration=spec, parameters={"region": region, "service": service}, inputs=inputs, clock=lambda: NOW
    )


def botocore_signature(request: httpx.Request, *, region: str, service: str, token: str | None = None) -> str:
    """What botocore's SigV4 signer computes for the headers our signature says it signed."""
    signed = request.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    aws = AWSRequest(
        method=request.method,
        url=str(request.url),
        headers={name: request.headers[name] for name in signed},
        data=request.content,
    )
    aws.context["timestamp"] = request.headers["x-amz-date"]
    signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(Credentials(KEY_ID, SECRET, token), service, region)
    return str(signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws))


@pytest.mark.parametrize(
    ("method", "url", "body", "headers"),
    [
        ("GET", "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15", b"", {}),
        ("GET", "https://sts.eu-west-1.amazonaws.com/a%20b/c~d/%7e?b=2&a=x+y&a=1&z=%7e&e=&k=%2F%2B", b"", {}),
        ("GET", "https://sts.eu-west-1.amazonaws.com/caf%C3%A9//x/?q=%E2%9C%93&sp=a%20b", b"", {}),
        (
            "POST",
            "https://sts.eu-west-1.amazonaws.com/",
            b"Action=GetCallerIdentity&Version=2011-06-15",
            {"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
        ),
        ("PUT", "https://sts.eu-west-1.amazonaws.com/j", b'{"a": [1, 2], "b": "\xc3\xa9"}', {"x-amz-target": "A.B"}),
    ],
)
@pytest.mark.parametrize("token", [None, TOKEN])
def test_sigv4_matches_botocore(method: str, url: str, body: bytes, headers: dict[str, str], token: str | None) -> None:
    """Our SigV4 signature is the one botocore computes for the same request and instant."""
    spec = aws_spec()
    request = httpx.Request(method, url, headers=headers, content=body)
    signed = plugin_for(spec.auth).sign(aws_ctx(spec, token=token), request)
    assert signed.headers["x-amz-date"] == "20261203T130005Z"
    assert signed.headers.get("x-amz-security-token") == token
    assert f"Credential={KEY_ID}/20261203/eu-west-1/sts/aws4_request" in signed.headers["authorization"]
    expected = botocore_signature(signed, region="eu-west-1", service="sts", token=token)
    assert signed.headers["authorization"].endswith(f"Signature={expected}")


@pytest.mark.parametrize("payload", ["signed", "unsigned"])
def test_sigv4_s3_content_sha256(payload: str) -> None:
    """S3: the path is signed as sent (no second encoding) and X-Amz-Content-SHA256 is the body hash or UNSIGNED."""
    spec = aws_spec(payload=payload, content_sha256_header=True)
    request = httpx.Request("PUT", "https://s3.eu-west-1.amazonaws.com/bucket/my%20key+1.txt", content=b"hello")
    signed = plugin_for(spec.auth).sign(aws_ctx(spec, service="s3"), request)
    sha = signed.headers["x-amz-content-sha256"]
    assert sha == ("UNSIGNED-PAYLOAD" if payload == "unsigned" else hashlib.sha256(b"hello").hexdigest())
    assert signed.url.raw_path == b"/bucket/my%20key%2B1.txt"
    assert signed.headers["authorization"].endswith(
        f"Signature={botocore_signature(signed, region='eu-west-1', service='s3')}"
    )


def test_sigv4_signs_more_headers_when_asked() -> None:
    """``signed_headers`` adds headers the request has; absent ones are not invented."""
    spec = aws_spec(signed_headers=["X-Request-Id", "If-Match"])
    request = httpx.Request("GET", "https://sts.eu-west-1.amazonaws.com/", headers={"X-Request-Id": "  a   b "})
    signed = plugin_for(spec.auth).sign(aws_ctx(spec), request)
    assert "SignedHeaders=host;x-amz-date;x-request-id," in signed.headers["authorization"]
    assert signed.headers["authorization"].endswith(
        f"Signature={botocore_signature(signed, region='eu-west-1', service='sts')}"
    )


@pytest.mark.parametrize(
    ("parameter", "value"),
    [("region", "eu-west-1/x"), ("region", "eu\r\nX-Evil: 1"), ("service", "sts aws4_request"), ("service", "")],
)
def test_sigv4_hostile_scope_values(parameter: str, value: str) -> None:
    """A region or service that is not a plain name is refused, so it cannot reshape the scope or add a header."""
    spec = aws_spec()
    values = {"region": "eu-west-1", "service": "sts", parameter: value}
    request = httpx.Request("GET", "https://sts.eu-west-1.amazonaws.com/")
    with pytest.raises((UnsafeValueError, TemplateError)):
        plugin_for(spec.auth).sign(aws_ctx(spec, **values), request)


def test_sigv4_missing_or_hostile_keys() -> None:
    """No key: a connection error; a key id or token with a line break or a comma: refused; no secret in messages."""
    spec = aws_spec()
    plugin = plugin_for(spec.auth)
    request = httpx.Request("GET", "https://sts.eu-west-1.amazonaws.com/")
    empty = AuthContext(integration=spec, parameters={"region": "eu-west-1", "service": "sts"})
    with pytest.raises(ConnectionStateError, match="no AWS access key"):
        plugin.sign(empty, request)
    for inputs in (
        {"access_key_id": "AK,Signature=x", "secret_access_key": SECRET},
        {"access_key_id": KEY_ID, "secret_access_key": SECRET, "session_token": "a\r\nX-Evil: 1"},
    ):
        ctx = AuthContext(integration=spec, parameters={"region": "eu-west-1", "service": "sts"}, inputs=inputs)
        with pytest.raises(UnsafeValueError) as caught:
            plugin.sign(ctx, request)
        assert SECRET not in str(caught.value)


def test_sigv4_inputs_and_spec_checks() -> None:
    """The user enters the key (the session token is optional); a parameter of the same name supplies it instead."""
    spec = aws_spec()
    inputs = plugin_for(spec.auth).inputs(spec)
    assert [(i.name, i.secret, i.required) for i in inputs] == [
        ("access_key_id", False, True),
        ("secret_access_key", True, True),
        ("session_token", True, False),
    ]
    supplied = validate_spec(
        {
            "key": "aws",
            "name": "AWS",
            "parameters": [{"name": "access_key_id"}, {"name": "secret_access_key", "secret": True}],
            "auth": {"type": "aws_sigv4", "region": "us-east-1", "service": "sts"},
        }
    )
    assert [i.name for i in plugin_for(supplied.auth).inputs(supplied)] == ["session_token"]
    with pytest.raises(SpecError) as caught:
        validate_spec({"key": "aws", "name": "AWS", "auth": {"type": "aws_sigv4", "region": "{nope}"}})
    assert {(e.path, "required" in e.message or "not a declared" in e.message) for e in caught.value.errors} >= {
        ("auth.service", True),
        ("auth.region", True),
    }


def test_sigv4_connection_test_request_is_signed() -> None:
    """The connection test request (``api_request``) carries the signature too."""
    spec = aws_spec()
    request = api_request(aws_ctx(spec), "GET", "/?Action=GetCallerIdentity&Version=2011-06-15")
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert request.headers["authorization"].endswith(
        f"Signature={botocore_signature(request, region='eu-west-1', service='sts')}"
    )


# -- HMAC --------------------------------------------------------------------------------------------

PARTNER_SECRET = "partner-secret-Zx81"


def hmac_spec(**auth: object) -> typing.Any:
    block: dict[str, object] = {
        "type": "hmac_signature",
        "string_to_sign": "{method}\n{path}\n{query}\n{timestamp}\n{nonce}\n{body_digest}",
        "timestamp": "unix",
        "headers": {"X-Timestamp": "{timestamp}", "X-Nonce": "{nonce}"},
        "signature": {"in": "header", "name": "Authorization", "template": "HMAC {key_id}:{signature}"},
        **auth,
    }
    return validate_spec(
        {"key": "partner", "name": "Partner", "auth": block, "request": {"base_url": "https://api.partner.example"}}
    )


def hmac_ctx(spec: typing.Any, secret: str = PARTNER_SECRET) -> AuthContext:
    return AuthContext(integration=spec, inputs={"key_id": "k-1", "secret_key": secret}, clock=lambda: NOW)


def _independent_query(raw: str) -> str:
    """Sorted, each name and value decoded (``+`` as space) and encoded RFC 3986-strict: written apart from ours."""
    pairs = parse_qsl(raw, keep_blank_values=True)
    return "&".join(f"{k}={v}" for k, v in sorted((quote(k, safe="~"), quote(v, safe="~")) for k, v in pairs))


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "https://api.partner.example/v1/orders?b=2&a=x+y&a=1&z=%7e", b""),
        ("POST", "https://api.partner.example/v1/orders", b'{"qty": 1, "note": "caf\xc3\xa9"}'),
        ("DELETE", "https://api.partner.example/v1/orders/1", b""),
    ],
)
def test_hmac_partner_scheme(method: str, url: str, body: bytes) -> None:
    """Method, path, sorted query, time, nonce and body digest, HMAC-SHA256 hex, as ``HMAC key:signature``."""
    spec = hmac_spec()
    request = plugin_for(spec.auth).sign(hmac_ctx(spec), httpx.Request(method, url, content=body))
    timestamp, nonce = request.headers["x-timestamp"], request.headers["x-nonce"]
    assert timestamp == str(int(NOW.timestamp()))
    path, _, raw = request.url.raw_path.decode().partition("?")
    message = "\n".join([method, path, _independent_query(raw), timestamp, nonce, hashlib.sha256(body).hexdigest()])
    expected = hmac.new(PARTNER_SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert request.headers["authorization"] == f"HMAC k-1:{expected}"


def test_hmac_binance_style_query_signature() -> None:
    """``{raw_query}{body}``, a timestamp added to the query first, the signature appended as the last parameter."""
    spec = hmac_spec(
        string_to_sign="{raw_query}{body}",
        timestamp="unix_ms",
        headers={"X-MBX-APIKEY": "{key_id}"},
        query={"timestamp": "{timestamp}", "recvWindow": "5000"},
        signature={"in": "query", "name": "signature"},
    )
    request = httpx.Request(
        "POST", "https://api.partner.example/api/v3/order?symbol=BTCUSDT&side=BUY", content=b"quantity=1"
    )
    request = plugin_for(spec.auth).sign(hmac_ctx(spec), request)
    raw = request.url.raw_path.decode().partition("?")[2]
    signed_part, _, signature = raw.rpartition("&signature=")
    assert signed_part == f"symbol=BTCUSDT&side=BUY&timestamp={int(NOW.timestamp() * 1000)}&recvWindow=5000"
    assert (
        signature
        == hmac.new(PARTNER_SECRET.encode(), (signed_part + "quantity=1").encode(), hashlib.sha256).hexdigest()
    )
    assert request.headers["x-mbx-apikey"] == "k-1"


def test_hmac_coinbase_style_base64_key() -> None:
    """A base64 secret decoded to the key; ``{timestamp}{method}{target}{body}``; base64 signature."""
    raw_key = b"\x00\x01binary-key\xff"
    spec = hmac_spec(
        string_to_sign="{timestamp}{method}{target}{body}",
        key_encoding="base64",
        encoding="base64",
        headers={"CB-ACCESS-KEY": "{key_id}", "CB-ACCESS-TIMESTAMP": "{timestamp}"},
        signature={"in": "header", "name": "CB-ACCESS-SIGN"},
    )
    secret = base64.b64encode(raw_key).decode()
    request = httpx.Request("GET", "https://api.partner.example/orders?limit=10")
    request = plugin_for(spec.auth).sign(hmac_ctx(spec, secret), request)
    message = f"{request.headers['cb-access-timestamp']}GET/orders?limit=10"
    expected = base64.b64encode(hmac.new(raw_key, message.encode(), hashlib.sha256).digest()).decode()
    assert request.headers["cb-access-sign"] == expected


@pytest.mark.parametrize(
    ("algorithm", "encoding", "digest", "digest_encoding", "timestamp", "nonce"),
    [
        ("sha1", "base64url", "md5", "base64", "iso8601", "hex"),
        ("sha512", "hex", "sha512", "hex", "http_date", "unix_ms"),
        ("sha256", "base64", "sha1", "base64", "unix_ms", "unix_us"),
    ],
)
def test_hmac_variants(
    algorithm: str, encoding: str, digest: str, digest_encoding: str, timestamp: str, nonce: str
) -> None:
    """Every algorithm, encoding, digest, timestamp and nonce form signs what an independent computation expects."""
    spec = hmac_spec(
        algorithm=algorithm,
        encoding=encoding,
        body_digest=digest,
        body_digest_encoding=digest_encoding,
        timestamp=timestamp,
        nonce=nonce,
        signed_headers=["Content-Type", "X-Timestamp"],
        string_to_sign="{headers}\n{header_names}\n{body_digest}\n{host}\n{nonce}",
        signature={"in": "header", "name": "X-Sig"},
    )
    body = b'{"a": 1}'
    request = httpx.Request(
        "POST", "https://api.partner.example:8443/x", headers={"Content-Type": "application/json"}, content=body
    )
    request = plugin_for(spec.auth).sign(hmac_ctx(spec), request)
    raw_digest = hashlib.new(digest, body).digest()
    body_digest = raw_digest.hex() if digest_encoding == "hex" else base64.b64encode(raw_digest).decode()
    message = (
        f"content-type:application/json\nx-timestamp:{request.headers['x-timestamp']}\ncontent-type;x-timestamp\n"
        f"{body_digest}\napi.partner.example:8443\n{request.headers['x-nonce']}"
    )
    mac = hmac.new(PARTNER_SECRET.encode(), message.encode(), algorithm).digest()
    expected = {
        "hex": mac.hex(),
        "base64": base64.b64encode(mac).decode(),
        "base64url": base64.urlsafe_b64encode(mac).decode().rstrip("="),
    }[encoding]
    assert request.headers["x-sig"] == expected


def test_hmac_nonces_increase_and_timestamps_format() -> None:
    """Increasing nonces never repeat, even within one clock tick; the HTTP date is RFC 9110's."""
    spec = hmac_spec(nonce="unix_us", timestamp="http_date")
    plugin = plugin_for(spec.auth)
    nonces = [
        int(plugin.sign(hmac_ctx(spec), httpx.Request("GET", "https://api.partner.example/")).headers["x-nonce"])
        for _ in range(50)
    ]
    assert nonces == sorted(set(nonces))
    stamp = plugin.sign(hmac_ctx(spec), httpx.Request("GET", "https://api.partner.example/")).headers["x-timestamp"]
    assert stamp == "Thu, 03 Dec 2026 13:00:05 GMT"


def test_hmac_inputs_errors_and_no_secret_in_messages() -> None:
    """The key id is asked only when used; a missing or undecodable secret fails clearly without showing it."""
    spec = hmac_spec()
    plugin = plugin_for(spec.auth)
    assert [(i.name, i.secret) for i in plugin.inputs(spec)] == [("key_id", False), ("secret_key", True)]
    keyless = hmac_spec(signature={"in": "header", "name": "X-Sig"})
    assert [i.name for i in plugin.inputs(keyless)] == ["secret_key"]
    request = httpx.Request("GET", "https://api.partner.example/")
    with pytest.raises(ConnectionStateError, match="no secret key"):
        plugin.sign(AuthContext(integration=spec, inputs={"key_id": "k"}), request)
    bad = hmac_spec(key_encoding="base64")
    with pytest.raises(ConnectionStateError, match="not valid base64") as caught:
        plugin.sign(hmac_ctx(bad, "not*base64!secret"), request)
    assert "not*base64!secret" not in str(caught.value)
    hostile = AuthContext(integration=spec, inputs={"key_id": "k\r\nX-Evil: 1", "secret_key": PARTNER_SECRET})
    with pytest.raises(UnsafeValueError):
        plugin.sign(hostile, request)


def test_hmac_spec_validation() -> None:
    """A missing string to sign, an unknown name, a name used where it is not known yet: found when saved."""
    base = {"key": "p", "name": "P"}
    with pytest.raises(SpecError) as caught:
        validate_spec({**base, "auth": {"type": "hmac_signature"}})
    assert [e.path for e in caught.value.errors] == ["auth.string_to_sign"]
    with pytest.raises(SpecError) as caught:
        validate_spec(
            {
                **base,
                "auth": {
                    "type": "hmac_signature",
                    "string_to_sign": "{method}{nope}",
                    "headers": {"X-Q": "{raw_query}"},
                    "signature": {"in": "query", "name": "sig", "template": "{signature}{bad}"},
                },
            }
        )
    assert {e.path for e in caught.value.errors} == {
        "auth.string_to_sign",
        "auth.headers.X-Q",
        "auth.signature.template",
    }


def test_strict_encoding() -> None:
    """One strict form: ``+`` in a query is a space, unreserved characters are never encoded, ``%2F`` stays."""
    assert strict_query("a=x+y&b=%7e&c&d=%2f%2B") == [("a", "x%20y"), ("b", "~"), ("c", ""), ("d", "%2F%2B")]
    assert strict_path("/a%2Fb/c d/%7E/caf%C3%A9") == "/a%2Fb/c%20d/~/caf%C3%A9"


def test_aws_example_refuses_a_region_that_would_move_the_host() -> None:
    """examples/aws.yaml: a region with a dot or a slash is refused when connecting (its pattern)."""
    spec = load_spec((Path(__file__).parents[2] / "examples" / "aws.yaml").read_text())
    for region in ("evil.example", "eu-west-1.evil.example", "eu-west-1/x", "eu-west-1\r\nX: 1"):
        with pytest.raises(ParameterError):
            check_parameter_values(spec, {"region": region})
    ctx = AuthContext(
        integration=spec,
        parameters=check_parameter_values(spec, {"region": "eu-west-1"}),
        inputs={"access_key_id": KEY_ID, "secret_access_key": SECRET},
        clock=lambda: NOW,
    )
    request = api_request(ctx, "GET", spec.test.path if spec.test else "/")
    assert request.url.host == "sts.eu-west-1.amazonaws.com"
    expected = botocore_signature(request, region="eu-west-1", service="sts")
    assert request.headers["authorization"].endswith(f"Signature={expected}")


def test_plugin_edges() -> None:
    """Entered credentials, a spec of another type, an unset region or string to sign, and dot segments."""
    from authbridge.auth.plugins.aws_sigv4 import _canonical_uri
    from authbridge.spec import Integration

    aws, partner = plugin_for("aws_sigv4"), plugin_for("hmac_signature")
    other = validate_spec({"key": "o", "name": "O", "auth": {"type": "api_token"}})
    for plugin in (aws, partner):
        assert plugin.entered(other) and plugin.signs(other)
        with pytest.raises(TypeError):
            plugin.sign(AuthContext(integration=other), httpx.Request("GET", "https://x.example/"))
    unset = Integration.model_validate({"key": "u", "name": "U", "auth": {"type": "aws_sigv4", "service": "sts"}})
    with pytest.raises(TemplateError, match=r"auth\.region is not set"):
        aws.sign(aws_ctx(unset), httpx.Request("GET", "https://x.example/"))
    blank = Integration.model_validate({"key": "u", "name": "U", "auth": {"type": "hmac_signature"}})
    with pytest.raises(TemplateError, match="string_to_sign is not set"):
        partner.sign(hmac_ctx(blank), httpx.Request("GET", "https://x.example/"))
    assert _canonical_uri("/a/./b/../c//d/") == "/a/c/d/"
    assert _canonical_uri("/../x") == "/x"
    assert _canonical_uri("") == "/"
    entered = aws.begin(aws_ctx(aws_spec()))
    assert isinstance(entered, Entered)
    assert entered.inputs == {"access_key_id": KEY_ID, "secret_access_key": SECRET}


def test_no_secret_in_reprs() -> None:
    """The context, the entered credentials and the signed request's repr show no secret key."""
    ctx = aws_ctx(aws_spec(), token=TOKEN)
    entered = plugin_for("aws_sigv4").begin(ctx)
    request = plugin_for("aws_sigv4").sign(ctx, httpx.Request("GET", "https://sts.eu-west-1.amazonaws.com/"))
    partner = hmac_ctx(hmac_spec())
    assert "[secure]" in repr(request.headers)  # httpx masks the Authorization header
    for text in (repr(ctx), repr(entered), repr(partner), repr(partner.integration), repr(plugin_for("aws_sigv4"))):
        for secret in (SECRET, TOKEN, PARTNER_SECRET):
            assert secret not in text


@pytest.mark.parametrize("seed", range(3))
def test_strict_fast_path_agrees_with_the_slow_one(seed: int) -> None:
    """An already-strict path or query is kept as is: exactly what decoding and re-encoding would give."""
    rng = random.Random(seed)
    alphabet = "aZ0-._~/%2Ff417Ee+ =&3D5C"
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
        path = "/".join(strict(unquote_to_bytes(segment)) for segment in text.split("/"))
        assert strict_path(text) == path
        items = (item.partition("=") for item in text.split("&") if item)
        pairs = [
            (strict(unquote_to_bytes(n.replace("+", " "))), strict(unquote_to_bytes(v.replace("+", " "))))
            for n, _, v in items
        ]
        assert strict_query(text) == pairs
