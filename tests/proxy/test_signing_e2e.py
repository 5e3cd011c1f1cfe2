"""Signed requests through a running ``authbridge run`` and through the bridge's ``httpx.Auth``, verified by a loopback
upstream that recomputes each signature from the raw request it received (tests/proxy/signing_upstream.py).
The signers request by request: tests/auth/test_signing.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from authbridge import Bridge
from authbridge.proxy.forward import REPLAY_LIMIT
from authbridge.spec import validate_spec
from tests.proxy.conftest import Server
from tests.proxy.signing_upstream import SigningState, make_signing_app
from tests.proxy.upstream import free_port, serve
from tests.sdk.helpers import open_bridge

KEY_ID, SECRET = "AKIDLOOPBACK01", "loopback/SECRET+key=wJalrXUtnFEMI"
TEMP_ID, TEMP_SECRET, TEMP_TOKEN = "ASIALOOPBACK02", "temp/SECRET+key=9f8e7d", "IQoJb3JpZ2luX2VjE/session+token=="
PARTNER_ID, PARTNER_SECRET = "partner-7", "partner-SECRET-value-31c9"
#: Characters that need encoding, repeated keys, an empty value, an encoded slash and plus, UTF-8.
QUERY = "b=2&a=x+y&a=1&z=%7e&e=&k=%2F%2B&u=caf%C3%A9&sp=a%20b"


class Signing:
    def __init__(self, url: str, state: SigningState) -> None:
        self.url, self.state = url, state


@pytest.fixture(scope="module")
def signing_upstream() -> Iterator[Signing]:
    state = SigningState()
    with serve(make_signing_app(state), free_port()) as url:
        yield Signing(url, state)


@pytest.fixture
def upstream(signing_upstream: Signing) -> Signing:
    signing_upstream.state.reset()
    signing_upstream.state.aws_keys.update({KEY_ID: (SECRET, None), TEMP_ID: (TEMP_SECRET, TEMP_TOKEN)})
    signing_upstream.state.hmac_keys[PARTNER_ID] = PARTNER_SECRET
    return signing_upstream


def aws_spec(upstream: Signing, key: str = "awsloop") -> dict[str, object]:
    return {
        "key": key,
        "name": "AWS on loopback",
        "parameters": [
            {"name": "region", "required": True, "default": "eu-west-1"},
            {"name": "service", "required": True, "default": "sts"},
        ],
        "auth": {"type": "aws_sigv4", "region": "{region}", "service": "{service}", "content_sha256_header": True},
        "request": {"base_url": upstream.url},
    }


def partner_spec(upstream: Signing, key: str = "partnerloop") -> dict[str, object]:
    return {
        "key": key,
        "name": "Partner on loopback",
        "auth": {
            "type": "hmac_signature",
            "string_to_sign": "{method}\n{path}\n{query}\n{timestamp}\n{nonce}\n{body_digest}",
            "encoding": "base64",
            "headers": {"X-Timestamp": "{timestamp}", "X-Nonce": "{nonce}"},
            "signature": {"in": "header", "name": "Authorization", "template": "HMAC {key_id}:{signature}"},
        },
        "request": {"base_url": upstream.url},
    }


def binance_spec(upstream: Signing, key: str = "binanceloop") -> dict[str, object]:
    return {
        "key": key,
        "name": "Exchange on loopback",
        "auth": {
            "type": "hmac_signature",
            "string_to_sign": "{raw_query}{body}",
            "timestamp": "unix_ms",
            "headers": {"X-MBX-APIKEY": "{key_id}"},
            "query": {"timestamp": "{timestamp}", "recvWindow": "5000"},
            "signature": {"in": "query", "name": "signature"},
        },
        "request": {"base_url": upstream.url},
    }


def _proxy(server: Server, connection: str, path: str) -> str:
    return f"{server.url}/proxy/{connection}/{path}"


@pytest.fixture
def aws(server: Server, upstream: Signing) -> str:
    server.integration(aws_spec(upstream))
    return server.connect("awsloop", credentials={"access_key_id": KEY_ID, "secret_access_key": SECRET})


def test_sigv4_get_with_awkward_query(server: Server, upstream: Signing, aws: str) -> None:
    """A GET whose path and query need encoding, with repeated keys, verifies upstream; the values arrive intact."""
    response = httpx.get(_proxy(server, aws, f"v1/a%20b/c~d?{QUERY}"), headers=server.headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["path"] == "/v1/a%20b/c~d"
    assert sorted(map(tuple, answer["query"])) == sorted(
        [("b", "2"), ("a", "x y"), ("a", "1"), ("z", "~"), ("e", ""), ("k", "/+"), ("u", "café"), ("sp", "a b")]
    )


@pytest.mark.parametrize(
    ("method", "body", "headers"),
    [
        (
            "POST",
            json.dumps({"Action": "GetCallerIdentity", "note": "café"}).encode(),
            {"Content-Type": "application/json"},
        ),
        ("POST", b"", {}),
        ("DELETE", b"", {}),
        ("PUT", b"x" * 200_000, {"Content-Type": "application/octet-stream"}),
    ],
)
def test_sigv4_bodies(
    server: Server, upstream: Signing, aws: str, method: str, body: bytes, headers: dict[str, str]
) -> None:
    """A JSON body, an empty one, a large one: each hash and signature verifies upstream; the body arrives as sent."""
    response = httpx.request(
        method, _proxy(server, aws, "items?x=1"), content=body, headers={**server.headers, **headers}
    )
    assert response.status_code == 200, response.text
    received = upstream.state.received[-1]
    assert received["body"] == body
    assert received["headers"]["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()


def test_sigv4_s3_unsigned_payload(server: Server, upstream: Signing) -> None:
    """S3 style: the path signed once-encoded, ``UNSIGNED-PAYLOAD`` sent and signed; botocore's S3 signer agrees."""
    spec = aws_spec(upstream, key="awss3")
    spec["auth"] = {**spec["auth"], "payload": "unsigned"}  # type: ignore[dict-item]
    server.integration(spec)
    connection = server.connect(
        "awss3",
        parameters={"service": "s3"},
        credentials={"access_key_id": KEY_ID, "secret_access_key": SECRET},
    )
    response = httpx.put(
        _proxy(server, connection, "bucket/my%20key+1.txt"), content=b"object body", headers=server.headers
    )
    assert response.status_code == 200, response.text
    received = upstream.state.received[-1]
    assert received["headers"]["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert received["path"] == "/bucket/my%20key%2B1.txt" and received["body"] == b"object body"


def test_sigv4_session_token(server: Server, upstream: Signing) -> None:
    """Temporary credentials: the session token rides as X-Amz-Security-Token and is signed."""
    server.integration(aws_spec(upstream))
    connection = server.connect(
        "awsloop",
        credentials={"access_key_id": TEMP_ID, "secret_access_key": TEMP_SECRET, "session_token": TEMP_TOKEN},
    )
    response = httpx.get(_proxy(server, connection, "?Action=GetCallerIdentity"), headers=server.headers)
    assert response.status_code == 200, response.text
    assert "x-amz-security-token" in upstream.state.received[-1]["headers"]["authorization"]


def test_sigv4_retry_is_signed_again(server: Server, upstream: Signing, aws: str) -> None:
    """A 503 retried by the proxy is signed afresh and verifies."""
    upstream.state.statuses = [503]
    response = httpx.get(_proxy(server, aws, "retry"), headers={**server.headers, "X-AuthBridge-Retries": "1"})
    assert response.status_code == 200, response.text
    assert len(upstream.state.received) == 2


def test_rejected_signature_is_relayed_and_nothing_is_lost(server: Server, upstream: Signing) -> None:
    """An upstream that rejects the signature: its 403 and body reach the caller; the connection stays as it was."""
    server.integration(aws_spec(upstream))
    connection = server.connect(
        "awsloop", credentials={"access_key_id": KEY_ID, "secret_access_key": "a-wrong-SECRET-value"}
    )
    response = httpx.get(_proxy(server, connection, "x"), headers=server.headers)
    assert response.status_code == 403
    assert response.json()["__type"] == "SignatureDoesNotMatch"
    shown = httpx.get(f"{server.url}/connections/{connection}", headers=server.headers)
    assert shown.json()["status"] == "active"
    upstream.state.aws_keys[KEY_ID] = ("a-wrong-SECRET-value", None)  # the provider now agrees: the key was kept
    assert httpx.get(_proxy(server, connection, "x"), headers=server.headers).status_code == 200
    for text in (shown.text, response.text, server.log_text()):
        assert "a-wrong-SECRET-value" not in text and SECRET not in text


def test_body_over_the_limit_is_refused_clearly(server: Server, upstream: Signing, aws: str) -> None:
    """A body past the replay limit cannot be signed as a whole: 413 with a clear message, nothing sent upstream."""

    def chunks() -> Iterator[bytes]:
        for _ in range(REPLAY_LIMIT // (1024 * 1024) + 2):
            yield b"b" * (1024 * 1024)

    response = httpx.post(_proxy(server, aws, "big"), content=chunks(), headers=server.headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert "signed" in response.json()["error"]["message"]
    assert upstream.state.received == []


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"region": "eu-west-1\r\nX-Evil: 1"}, "region"),
        ({"service": "sts/../../evil"}, "service"),
        ({"region": "evil.example"}, "region"),
    ],
)
def test_hostile_scope_parameters(server: Server, upstream: Signing, parameters: dict[str, str], field: str) -> None:
    """A hostile region or service: no request goes upstream, no header is injected, the error names the field."""
    server.integration(aws_spec(upstream))
    created = httpx.post(
        f"{server.url}/connections",
        json={
            "integration": "awsloop",
            "name": "hostile",
            "parameters": parameters,
            "credentials": {"access_key_id": KEY_ID, "secret_access_key": SECRET},
        },
        headers=server.headers,
    )
    assert created.status_code == 201, created.text  # no pattern declared: the value is only checked where it lands
    response = httpx.get(_proxy(server, created.json()["id"], "x"), headers=server.headers)
    assert response.status_code == 422, response.text
    assert f"auth.{field}" in response.json()["error"]["message"]
    assert upstream.state.received == []
    assert SECRET not in response.text


def test_partner_hmac_get_and_post(server: Server, upstream: Signing) -> None:
    """The partner HMAC over method, path, sorted query, time, nonce and body digest verifies for a GET and a POST."""
    server.integration(partner_spec(upstream))
    connection = server.connect("partnerloop", credentials={"key_id": PARTNER_ID, "secret_key": PARTNER_SECRET})
    response = httpx.get(_proxy(server, connection, f"v1/orders?{QUERY}"), headers=server.headers)
    assert response.status_code == 200, response.text
    # A path written with lower-case and needless escapes reaches the upstream as written, so as signed.
    response = httpx.get(_proxy(server, connection, "v1/a%7eb/caf%c3%a9/%41"), headers=server.headers)
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "/v1/a%7eb/caf%c3%a9/%41"
    body = json.dumps({"qty": 2, "note": "café"}).encode()
    response = httpx.post(
        _proxy(server, connection, "v1/orders"),
        content=body,
        headers={**server.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["body"] == body.decode("latin-1")
    shown = httpx.get(f"{server.url}/connections/{connection}", headers=server.headers).text
    assert PARTNER_SECRET not in shown and PARTNER_SECRET not in server.log_text()


def test_query_signature_binance_style(server: Server, upstream: Signing) -> None:
    """A signature in the query (after a timestamp added before signing) arrives exactly as signed."""
    server.integration(binance_spec(upstream))
    connection = server.connect("binanceloop", credentials={"key_id": PARTNER_ID, "secret_key": PARTNER_SECRET})
    response = httpx.post(
        _proxy(server, connection, "api/v3/order?symbol=BTCUSDT&note=a+b~c"),
        content=b"quantity=1&price=0.1",
        headers={**server.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    names = [name for name, _ in response.json()["query"]]
    assert names == ["symbol", "note", "timestamp", "recvWindow", "signature"]


def test_connection_test_request_is_signed(server: Server, upstream: Signing, aws: str) -> None:
    """``POST /connections/{id}/test`` sends a signed request the upstream verifies."""
    spec = {**aws_spec(upstream), "test": {"method": "GET", "path": "/?Action=GetCallerIdentity"}}
    server.integration(spec)
    response = httpx.post(f"{server.url}/connections/{aws}/test", headers=server.headers)
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True, response.text
    assert upstream.state.received[-1]["problem"] is None


# -- the bridge's httpx.Auth -------------------------------------------------------------------------


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with open_bridge(tmp_path) as opened:
        yield opened


async def test_bridge_signs_sigv4_and_hmac(bridge: Bridge, upstream: Signing) -> None:
    """Through ``bridge.auth``: SigV4 (GET with an awkward query, JSON POST, session token) and the partner HMAC."""
    await bridge.broker.save_integration(validate_spec(aws_spec(upstream)))
    await bridge.broker.save_integration(validate_spec(partner_spec(upstream)))
    create = bridge.connections.create
    plain = (
        await create(
            integration_key="awsloop",
            name="a",
            parameters={},
            credentials={"access_key_id": KEY_ID, "secret_access_key": SECRET},
        )
    ).connection.id
    temp = (
        await create(
            integration_key="awsloop",
            name="t",
            parameters={},
            credentials={"access_key_id": TEMP_ID, "secret_access_key": TEMP_SECRET, "session_token": TEMP_TOKEN},
        )
    ).connection.id
    partner = (
        await create(
            integration_key="partnerloop",
            name="p",
            parameters={},
            credentials={"key_id": PARTNER_ID, "secret_key": PARTNER_SECRET},
        )
    ).connection.id
    for connection in (plain, temp, partner):
        async with httpx.AsyncClient(auth=bridge.auth(connection), base_url=upstream.url) as api:
            got = await api.get(f"/v1/a%20b?{QUERY}")
            posted = await api.post("/v1/items", json={"n": 1, "s": "café"})
            empty = await api.delete("/v1/items/1")
        assert [got.status_code, posted.status_code, empty.status_code] == [200, 200, 200], [
            r.text for r in (got, posted, empty)
        ]
    assert all(seen["problem"] is None for seen in upstream.state.received)
