"""``aws_sigv4``: AWS Signature Version 4 on every request, with the access key entered when connecting.

The signer is written here (about 60 lines of ``hmac``/``hashlib``) rather than taken from botocore:
botocore is large, reads its own clock and signs every header a request happens to carry. The tests
check each signature against botocore's ``SigV4Auth`` and on a loopback upstream that recomputes it
with botocore from the raw request it received.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import quote

import httpx

from authbridge.auth.base import AuthContext
from authbridge.auth.form import TEMPLATE_HELP, Field
from authbridge.auth.placement import standard_placement
from authbridge.auth.plugin import AuthPlugin, Entered, Input
from authbridge.auth.signing import canonical_query, now_of, set_target, strict_path, strict_query
from authbridge.errors import ConnectionStateError, TemplateError, UnsafeValueError
from authbridge.spec import AwsSigV4Auth, Integration
from authbridge.spec.templating import references_of, render_text

__all__ = ["AwsSigV4Plugin"]

_ALGORITHM = "AWS4-HMAC-SHA256"
_UNSIGNED = "UNSIGNED-PAYLOAD"
#: Signed whenever the request has them, besides every ``x-amz-*`` header (requests-aws4auth's choice).
_ALWAYS = frozenset({"host", "content-type", "content-md5"})
#: The headers the signer sets (a caller's are replaced).
_OURS = frozenset({"x-amz-date", "x-amz-security-token", "x-amz-content-sha256"})
_SCOPE_PART = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEY_ID = re.compile(r"[!-+\--.0-~]{1,256}")  # printable ASCII but ',' and '/', which the header's syntax uses
_TOKEN = re.compile(r"[!-~]{1,8192}")
_INPUTS = (
    Input("access_key_id", "Access key ID"),
    Input("secret_access_key", "Secret access key", secret=True),
    Input("session_token", "Session token (temporary credentials only)", secret=True, required=False),
)


def _auth(spec: Integration) -> AwsSigV4Auth:
    auth = spec.auth
    if not isinstance(auth, AwsSigV4Auth):
        raise TypeError(f"integration {spec.key} is not an AWS Signature Version 4 integration")
    return auth


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """The day's derived key (four HMACs), kept: it changes once a day per region and service."""
    key = f"AWS4{secret}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, and empty segments dropped, as AWS normalizes a (non-S3) path before signing."""
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment and segment != ".":
            out.append(segment)
    trailing = "/" if path.endswith("/") and out else ""
    return "/" + "/".join(out) + trailing


def _canonical_uri(path: str) -> str:
    """The canonical URI of a non-S3 service: the (already encoded) path normalized, then encoded once more."""
    return quote(_remove_dot_segments(path), safe="/~")


def _scope_part(key: str, source: str | list[str] | None, values: Mapping[str, str | None], field: str) -> str:
    if source is None:
        raise TemplateError(f"{key}: {field} is not set")
    sources = (source,) if isinstance(source, str) else tuple(source)
    names = references_of(source)
    return _checked_scope_part(sources, tuple((name, values.get(name)) for name in sorted(names)), field)


@functools.lru_cache(maxsize=1024)
def _checked_scope_part(sources: tuple[str, ...], values: tuple[tuple[str, str | None], ...], field: str) -> str:
    """The rendered, checked region or service (the same parameters give the same answer: kept)."""
    value = render_text(list(sources) if len(sources) > 1 else sources[0], dict(values), field=field)
    if not _SCOPE_PART.fullmatch(value):
        raise UnsafeValueError(f"{field}: the value must be 1 to 64 letters, digits, '-' or '_' (an AWS {field[5:]})")
    return value


class AwsSigV4Plugin(AuthPlugin):
    """Signs each request: ``Authorization: AWS4-HMAC-SHA256 ...`` plus ``X-Amz-Date`` (and the session token)."""

    type = "aws_sigv4"
    label = "AWS Signature Version 4"
    model = AwsSigV4Auth
    form_title = "AWS Signature Version 4"
    form_intro = (
        "Each request is signed with the account's access key, entered when it connects "
        "(or given by parameters named access_key_id, secret_access_key, session_token)."
    )
    form_fields = (
        Field(
            "aws_sigv4.region", "auth.region", "Region", "text", TEMPLATE_HELP, placeholder="us-east-1", templated=True
        ),
        Field("aws_sigv4.service", "auth.service", "Service", "text", TEMPLATE_HELP, placeholder="sts", templated=True),
        Field(
            "aws_sigv4.payload",
            "auth.payload",
            "Payload",
            "select",
            options=(("signed", "signed (SHA-256 of the body)"), ("unsigned", "UNSIGNED-PAYLOAD (S3)")),
        ),
        Field(
            "aws_sigv4.content_sha256_header",
            "auth.content_sha256_header",
            "Send X-Amz-Content-SHA256",
            "checkbox",
            "S3 requires it.",
        ),
        Field(
            "aws_sigv4.signed_headers",
            "auth.signed_headers",
            "More signed headers",
            "list",
            "Header names, separated by commas (host, x-amz-* and content-type are always signed).",
        ),
    )

    def inputs(self, spec: Integration) -> tuple[Input, ...]:
        supplied = {p.name for p in spec.parameters}
        return tuple(i for i in _INPUTS if i.name not in supplied)

    def entered(self, spec: Integration) -> bool:
        return True

    def signs(self, spec: Integration) -> bool:
        return True

    def begin(self, ctx: AuthContext) -> Entered:
        return Entered(inputs={name: value for name, value in ctx.inputs.items() if value})

    def placement(self, ctx: AuthContext) -> tuple[dict[str, str], dict[str, str]]:
        return standard_placement(ctx, token=False)

    def sign(self, ctx: AuthContext, request: httpx.Request) -> httpx.Request:
        """Rewrite the URL strictly, add ``X-Amz-Date`` (and token, content hash), then ``Authorization``."""
        auth = _auth(ctx.integration)
        values = ctx.values()
        key_id, secret, token = (values.get(n) for n in ("access_key_id", "secret_access_key", "session_token"))
        if not key_id or not secret:
            raise ConnectionStateError(f"{ctx.integration.key}: the connection has no AWS access key; connect again")
        if not _KEY_ID.fullmatch(key_id):
            raise UnsafeValueError("access_key_id: must be printable ASCII without spaces, ',' or '/'")
        if token and not _TOKEN.fullmatch(token):
            raise UnsafeValueError("session_token: must be printable ASCII without spaces")
        region = _scope_part(ctx.integration.key, auth.region, values, "auth.region")
        service = _scope_part(ctx.integration.key, auth.service, values, "auth.service")
        amz_date = now_of(ctx.clock).strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]

        raw_path, _, raw_query = request.url.raw_path.decode("ascii").partition("?")
        path, pairs = strict_path(raw_path), strict_query(raw_query)
        set_target(request, path, pairs)
        payload = _UNSIGNED if auth.payload == "unsigned" else hashlib.sha256(request.content).hexdigest()
        # One pass over the headers (httpx looks each name up by scanning them all).
        ours = {"x-amz-date": amz_date}
        if token:
            ours["x-amz-security-token"] = token
        if auth.payload == "unsigned" or auth.content_sha256_header:
            ours["x-amz-content-sha256"] = payload
        wanted = _ALWAYS.union(auth.signed_headers)
        kept = [(n, v) for n, v in request.headers.multi_items() if n not in _OURS and n != "authorization"]
        signed: dict[str, list[str]] = {}
        for name, value in [*kept, *ours.items()]:
            if name in wanted or name.startswith("x-amz-"):
                signed.setdefault(name, []).append(" ".join(value.split()))
        names = sorted(signed)
        canonical_headers = "".join(f"{name}:{','.join(signed[name])}\n" for name in names)
        signed_headers = ";".join(names)
        uri = path if service == "s3" else _canonical_uri(path)
        canonical = "\n".join((request.method, uri, canonical_query(pairs), canonical_headers, signed_headers, payload))
        scope = f"{day}/{region}/{service}/aws4_request"
        to_sign = f"{_ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(_signing_key(secret, day, region, service), to_sign.encode(), hashlib.sha256).hexdigest()
        ours["authorization"] = (
            f"{_ALGORITHM} Credential={key_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
        )
        request.headers = httpx.Headers([*kept, *ours.items()])
        return request
