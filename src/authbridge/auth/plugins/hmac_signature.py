"""``hmac_signature``: an HMAC over a templated canonical string of each request, placed in a header or the query.

Covers the common shapes of exchange and partner APIs: Binance (``{raw_query}{body}``, hex, in the
query), Coinbase Exchange (``{timestamp}{method}{target}{body}``, base64 key, base64 signature),
partner APIs (``HMAC {key_id}:{signature}`` over method, path, sorted query, time, nonce and a body
digest). docs/spec.md lists every name a template may use.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx

from authbridge.auth.base import AuthContext
from authbridge.auth.form import KV_HELP, Field
from authbridge.auth.placement import standard_placement
from authbridge.auth.plugin import AuthPlugin, Entered, Input
from authbridge.auth.signing import canonical_query, now_of, query_string, set_target, strict, strict_query
from authbridge.errors import ConnectionStateError, TemplateError
from authbridge.spec import HmacSignatureAuth, Integration
from authbridge.spec.templating import references_of, render_header, render_text

__all__ = ["HmacSignaturePlugin"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECRET = Input("secret_key", "Secret key", secret=True)
_KEY_ID = Input("key_id", "Key ID")
_ALGORITHMS = (("sha256", "HMAC-SHA256"), ("sha512", "HMAC-SHA512"), ("sha1", "HMAC-SHA1"))
_ENCODINGS = (("hex", "hex"), ("base64", "base64"), ("base64url", "base64url (unpadded)"))
_MS = timedelta(milliseconds=1)
#: The last ``unix_ms``/``unix_us`` nonce handed out: each is larger than the one before.
_nonce_floor = [0]


def _auth(spec: Integration) -> HmacSignatureAuth:
    auth = spec.auth
    if not isinstance(auth, HmacSignatureAuth):
        raise TypeError(f"integration {spec.key} is not an HMAC signature integration")
    return auth


def _templates(spec: Integration) -> Iterable[str | list[str]]:
    auth = _auth(spec)
    yield from (auth.string_to_sign or "", auth.signature.template)
    yield from auth.headers.values()
    yield from auth.query.values()
    yield from spec.request.headers.values()
    yield from spec.request.query.values()


@functools.lru_cache(maxsize=1024)
def _uses(name: str, sources: tuple[str, ...]) -> bool:
    """Whether any of the templates refers to ``name`` (asked per request, answered once per spec)."""
    return any(name in references_of(source) for source in sources)


def _sources(spec: Integration) -> tuple[str, ...]:
    return tuple(s for t in _templates(spec) if t for s in ([t] if isinstance(t, str) else t))


@functools.lru_cache(maxsize=256)
def _key(secret: str, encoding: str) -> bytes:
    if encoding == "text":
        return secret.encode()
    try:
        return base64.b64decode(secret, validate=True) if encoding == "base64" else bytes.fromhex(secret)
    except (binascii.Error, ValueError):
        raise ConnectionStateError(
            f"the connection's secret key is not valid {encoding} (auth.key_encoding); connect again"
        ) from None


def _timestamp(moment: datetime, form: str) -> str:
    if form == "unix":
        return str(int((moment - _EPOCH).total_seconds()))
    if form == "unix_ms":
        return str((moment - _EPOCH) // _MS)
    if form == "iso8601":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return format_datetime(moment, usegmt=True)


def _nonce(form: str) -> str:
    if form == "uuid":
        return str(uuid.uuid4())
    if form == "hex":
        return secrets.token_hex(16)
    # Increasing within the process even when two requests share a clock tick (Kraken-style nonces).
    now = time.time_ns() // (1_000_000 if form == "unix_ms" else 1_000)
    _nonce_floor[0] = max(now, _nonce_floor[0] + 1)
    return str(_nonce_floor[0])


def _encode(digest: bytes, encoding: str) -> str:
    if encoding == "hex":
        return digest.hex()
    if encoding == "base64":
        return base64.b64encode(digest).decode("ascii")
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class HmacSignaturePlugin(AuthPlugin):
    """Signs each request with the entered secret key; the key id (when used) and secret are entered when connecting."""

    type = "hmac_signature"
    label = "HMAC signature"
    model = HmacSignatureAuth
    form_title = "HMAC signature"
    form_intro = (
        "Each request is signed: an HMAC of the string to sign with the account's secret key "
        "(entered when it connects, with the key ID when a template uses {key_id})."
    )
    form_fields = (
        Field(
            "hmac_signature.string_to_sign",
            "auth.string_to_sign",
            "String to sign",
            "textarea",
            "Names: {method} {path} {query} {raw_query} {target} {host} {body} {body_digest} {timestamp} {nonce} "
            "{headers} {header_names} {key_id}, and {parameters}. Write \\n in YAML for a line break.",
        ),
        Field("hmac_signature.algorithm", "auth.algorithm", "Algorithm", "select", options=_ALGORITHMS),
        Field("hmac_signature.encoding", "auth.encoding", "Signature encoding", "select", options=_ENCODINGS),
        Field(
            "hmac_signature.key_encoding",
            "auth.key_encoding",
            "Secret key is",
            "select",
            options=(("text", "text"), ("base64", "base64 (decoded first)"), ("hex", "hex (decoded first)")),
        ),
        Field(
            "hmac_signature.timestamp",
            "auth.timestamp",
            "{timestamp} format",
            "select",
            options=(
                ("unix", "unix seconds"),
                ("unix_ms", "unix milliseconds"),
                ("iso8601", "ISO 8601"),
                ("http_date", "HTTP date"),
            ),
        ),
        Field(
            "hmac_signature.nonce",
            "auth.nonce",
            "{nonce}",
            "select",
            options=(
                ("uuid", "UUID"),
                ("hex", "random hex"),
                ("unix_ms", "increasing ms"),
                ("unix_us", "increasing µs"),
            ),
        ),
        Field(
            "hmac_signature.body_digest",
            "auth.body_digest",
            "{body_digest} algorithm",
            "select",
            options=(("sha256", "SHA-256"), ("sha512", "SHA-512"), ("sha1", "SHA-1"), ("md5", "MD5")),
        ),
        Field(
            "hmac_signature.body_digest_encoding",
            "auth.body_digest_encoding",
            "{body_digest} encoding",
            "select",
            options=(("hex", "hex"), ("base64", "base64")),
        ),
        Field(
            "hmac_signature.signed_headers",
            "auth.signed_headers",
            "Signed headers",
            "list",
            "Header names for {headers} and {header_names}, separated by commas.",
        ),
        Field("hmac_signature.headers", "auth.headers", "Headers set before signing", "kv", KV_HELP),
        Field("hmac_signature.query", "auth.query", "Query parameters added before signing", "kv", KV_HELP),
        Field(
            "hmac_signature.signature.in",
            "auth.signature.in",
            "Signature goes in",
            "select",
            options=(("header", "a header"), ("query", "a query parameter")),
        ),
        Field("hmac_signature.signature.name", "auth.signature.name", "Signature header or parameter name"),
        Field(
            "hmac_signature.signature.template",
            "auth.signature.template",
            "Signature value",
            help="{signature} is the signature, e.g. HMAC {key_id}:{signature}.",
        ),
    )

    def inputs(self, spec: Integration) -> tuple[Input, ...]:
        supplied = {p.name for p in spec.parameters}
        wanted = (_KEY_ID,) if _uses("key_id", _sources(spec)) else ()
        return tuple(i for i in (*wanted, _SECRET) if i.name not in supplied)

    def entered(self, spec: Integration) -> bool:
        return True

    def signs(self, spec: Integration) -> bool:
        return True

    def begin(self, ctx: AuthContext) -> Entered:
        return Entered(inputs=dict(ctx.inputs))

    def placement(self, ctx: AuthContext) -> tuple[dict[str, str], dict[str, str]]:
        return standard_placement(ctx, token=False)

    def sign(self, ctx: AuthContext, request: httpx.Request) -> httpx.Request:
        """Set the headers and query of ``auth``, rewrite the URL strictly, sign, then place the signature."""
        auth = _auth(ctx.integration)
        if auth.string_to_sign is None:
            raise TemplateError(f"{ctx.integration.key}: auth.string_to_sign is not set")
        values = ctx.values()
        secret = values.pop("secret_key", None)
        if not secret:
            raise ConnectionStateError(f"{ctx.integration.key}: the connection has no secret key; connect again")
        key = _key(secret, auth.key_encoding)
        body = request.content
        raw_path, _, raw_query = request.url.raw_path.decode("ascii").partition("?")
        values.update(
            method=request.method,
            path=raw_path,
            host=request.url.netloc.decode("ascii"),
            timestamp=_timestamp(now_of(ctx.clock), auth.timestamp),
            nonce=_nonce(auth.nonce),
        )
        if _uses("body_digest", _sources(ctx.integration)):
            values["body_digest"] = _encode(hashlib.new(auth.body_digest, body).digest(), auth.body_digest_encoding)
        for name, template in auth.headers.items():
            request.headers[name] = render_header(template, values, field=f"auth.headers.{name}")
        pairs = strict_query(raw_query)
        added = {strict(name) for name in auth.query}
        pairs = [pair for pair in pairs if pair[0] not in added]
        pairs += [(strict(n), strict(render_text(t, values, field=f"auth.query.{n}"))) for n, t in auth.query.items()]
        set_target(request, raw_path, pairs)
        raw = query_string(pairs)
        headers = [(name, " ".join(request.headers.get(name, "").split())) for name in auth.signed_headers]
        values.update(
            query=canonical_query(pairs),
            raw_query=raw,
            target=f"{raw_path}?{raw}" if raw else raw_path,
            body=body.decode("utf-8", "surrogateescape"),
            headers="\n".join(f"{name}:{value}" for name, value in headers),
            header_names=";".join(auth.signed_headers),
        )
        message = render_text(auth.string_to_sign, values, field="auth.string_to_sign", allow_empty=True)
        digest = hmac.new(key, message.encode("utf-8", "surrogateescape"), auth.algorithm).digest()
        values["signature"] = _encode(digest, auth.encoding)
        placement = auth.signature
        if placement.in_ == "header":
            request.headers[placement.name] = render_header(placement.template, values, field="auth.signature.template")
        else:
            value = render_text(placement.template, values, field="auth.signature.template")
            set_target(request, raw_path, [*pairs, (strict(placement.name), strict(value))])
        return request
