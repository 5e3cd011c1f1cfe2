"""A loopback API that checks request signatures from the raw request it received, as AWS or a partner would.

SigV4 is recomputed with botocore's signer (``SigV4Auth``, ``S3SigV4Auth``) over the raw path, the raw
query string and the received headers; the partner HMAC and the Binance-style query signature are
recomputed here with their own canonicalization, written apart from AuthBridge's. A request that does
not verify gets a 403 in the provider's style; one that does gets 200 and what was received.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import typing
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.proxy.upstream import Handler, Scope, answer, asgi, read_body


class SigningState:
    """The keys the upstream accepts, and what it saw."""

    def __init__(self) -> None:
        #: access key id → (secret, session token or None)
        self.aws_keys: dict[str, tuple[str, str | None]] = {}
        #: key id → secret of the partner HMAC and the Binance-style scheme
        self.hmac_keys: dict[str, str] = {}
        self.received: list[dict[str, typing.Any]] = []
        self.nonces: set[str] = set()
        #: statuses to answer before checking anything (a 503 to make the proxy retry)
        self.statuses: list[int] = []

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


def _verify_sigv4(state: SigningState, method: str, target: str, headers: dict[str, str], body: bytes) -> str | None:
    """None when the AWS signature is right, else why not (botocore recomputes it)."""
    authorization = headers.get("authorization", "")
    try:
        algorithm, rest = authorization.split(" ", 1)
        fields = dict(part.strip().split("=", 1) for part in rest.split(","))
        key_id, day, region, service, terminator = fields["Credential"].split("/")
    except ValueError:
        return "malformed Authorization"
    if algorithm != "AWS4-HMAC-SHA256" or terminator != "aws4_request":
        return "wrong algorithm"
    if key_id not in state.aws_keys:
        return "InvalidClientTokenId"
    secret, token = state.aws_keys[key_id]
    if token is not None and headers.get("x-amz-security-token") != token:
        return "missing or wrong session token"
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "host and x-amz-date must be signed"
    amz_date = headers["x-amz-date"]
    if not amz_date.startswith(day):
        return "the scope's day is not the request's"
    age = abs((datetime.now(UTC) - datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)).total_seconds())
    if age > 900:
        return "RequestTimeTooSkewed"
    sha = headers.get("x-amz-content-sha256")
    if sha is not None and sha != "UNSIGNED-PAYLOAD" and sha != hashlib.sha256(body).hexdigest():
        return "XAmzContentSHA256Mismatch"
    request = AWSRequest(
        method=method, url=f"http://{headers['host']}{target}", headers={n: headers[n] for n in signed}, data=body
    )
    request.context["timestamp"] = amz_date
    signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(Credentials(key_id, secret, token), service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return None if hmac.compare_digest(expected, fields["Signature"]) else "SignatureDoesNotMatch"


def _canonical_query(raw: str) -> str:
    pairs = [(quote(k, safe="~"), quote(v, safe="~")) for k, v in parse_qsl(raw, keep_blank_values=True)]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _verify_partner(
    state: SigningState, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes
) -> str | None:
    """``Authorization: HMAC key:sig`` over method, path, sorted query, X-Timestamp, X-Nonce, sha256(body)."""
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    key_id, _, signature = credential.partition(":")
    if scheme != "HMAC" or key_id not in state.hmac_keys:
        return "unknown key"
    nonce = headers.get("x-nonce", "")
    if not nonce or nonce in state.nonces:
        return "nonce reused"
    state.nonces.add(nonce)
    message = "\n".join(
        [
            method,
            path,
            _canonical_query(raw_query),
            headers.get("x-timestamp", ""),
            nonce,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    mac = base64.b64encode(
        hmac.new(state.hmac_keys[key_id].encode(), message.encode(), hashlib.sha256).digest()
    ).decode()
    return None if hmac.compare_digest(mac, signature) else "bad signature"


def _verify_query_signature(state: SigningState, raw_query: str, headers: dict[str, str], body: bytes) -> str | None:
    """Binance style: hex HMAC of the query before ``&signature=`` and the body; key id in X-MBX-APIKEY."""
    signed_part, _, signature = raw_query.rpartition("&signature=")
    secret = state.hmac_keys.get(headers.get("x-mbx-apikey", ""))
    if secret is None:
        return "unknown key"
    mac = hmac.new(secret.encode(), signed_part.encode() + body, hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(mac, signature) else "bad signature"


def make_signing_app(state: SigningState) -> Handler:
    """The ASGI app."""

    async def handle(scope: Scope, receive: typing.Any, send: typing.Any) -> None:
        body = await read_body(receive)
        method: str = scope["method"]
        path = scope["raw_path"].decode("latin-1")
        raw_query = scope["query_string"].decode("latin-1")
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            headers[key] = f"{headers[key]},{value.decode('latin-1')}" if key in headers else value.decode("latin-1")
        target = f"{path}?{raw_query}" if raw_query else path
        seen = {"method": method, "path": path, "query": raw_query, "headers": headers, "body": body}
        state.received.append(seen)
        if state.statuses:
            problem: str | None = f"status {state.statuses[0]}"
            status = state.statuses.pop(0)
        else:
            if headers.get("authorization", "").startswith("AWS4-"):
                problem = _verify_sigv4(state, method, target, headers, body)
            elif "signature=" in raw_query:
                problem = _verify_query_signature(state, raw_query, headers, body)
            else:
                problem = _verify_partner(state, method, path, raw_query, headers, body)
            status = 403 if problem else 200
        seen["problem"] = problem
        data = (
            {"__type": problem, "message": "The request signature we calculated does not match"}
            if problem
            else {
                "verified": True,
                "method": method,
                "path": path,
                "query": parse_qsl(raw_query, keep_blank_values=True),
                "body": body.decode("latin-1"),
            }
        )
        await answer(send, status, json.dumps(data).encode())

    return asgi(handle)
