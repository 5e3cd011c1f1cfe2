"""Read a token endpoint's answer into a TokenSet, per the integration's ``token_response`` block."""

from __future__ import annotations

import base64
import binascii
import email.utils
import functools
import json
import math
import re
import typing
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import httpx

from authbridge.auth.base import MAX_BODY_BYTES, Deferred, TokenSet, resolve
from authbridge.errors import TokenEndpointError
from authbridge.redact import SENSITIVE_NAMES, basic_credentials, redact, scrub
from authbridge.spec import CustomTokenAuth, Integration, OAuth2Auth, TokenResponse
from authbridge.spec.models import JwtBearerAuth

__all__ = [
    "MAX_BODY_BYTES",
    "callback_fields",
    "check_token_value",
    "lookup",
    "parse_token_response",
    "size_text",
]

#: C0 and C1 control characters and DEL: never part of a token (a CR or LF would split a header).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: OAuth error codes (RFC 6749 §5.2, and GitHub's and Slack's) after which only a new authorization helps.
PERMANENT_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope"}
    | {"access_denied", "bad_verification_code", "bad_refresh_token", "incorrect_client_credentials"}
    | {"invalid_code", "invalid_refresh_token", "invalid_client_id", "bad_client_secret", "token_revoked"}
)
TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "slow_down", "server_error"})
_STANDARD = frozenset(
    "access_token refresh_token token_type scope expires_in expires_at error error_description error_uri".split()
)
# Never copied into `extra`: `code`, `state` and `key` are left out of this list as too common in profiles.
_SECRET_FIELDS = frozenset(SENSITIVE_NAMES) - {"code", "state", "key"}
_FORM = re.compile(r"[^=&\s]+=[^&\s]*(?:&[^=&\s]+=[^&\s]*)*")
_MAX_SECONDS = 100 * 366 * 86400  # an expiry further than a century away is a unit mistake
_DESCRIPTION_LIMIT = 300


class _Answer:
    """Who answered what, for messages; ``secrets`` are scrubbed from any text quoted from the body.

    The endpoint's text and the secrets are worked out when a message first needs them (never for a success).
    """

    def __init__(
        self,
        integration: str,
        endpoint: Deferred[str],
        status: int,
        *,
        secrets: Deferred[tuple[str, ...]] = (),
        retry_after: float | None = None,
    ) -> None:
        self.integration, self._endpoint, self.status = integration, endpoint, status
        self._secrets, self.retry_after = secrets, retry_after

    def __repr__(self) -> str:
        return f"_Answer(integration={self.integration!r}, status={self.status})"

    @functools.cached_property
    def endpoint(self) -> str:
        return resolve(self._endpoint).partition("#")[0].partition("?")[0]

    @functools.cached_property
    def secrets(self) -> tuple[str, ...]:
        return resolve(self._secrets)

    def clean(self, text: str, limit: int) -> str:
        text = redact(scrub(" ".join(text.split()), self.secrets))
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def fail(self, what: str, *, error: str | None = None, permanent: bool = False) -> TokenEndpointError:
        return TokenEndpointError(
            f"{self.integration}: token endpoint {self.endpoint} answered {what}",
            integration=self.integration,
            endpoint=self.endpoint,
            error=error,
            status=self.status,
            permanent=permanent,
            retry_after=None if permanent else self.retry_after,
        )

    def unusable(self, field: str, why: str) -> TokenEndpointError:
        return self.fail(f"an unusable {field} ({why}) (status {self.status})")


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)


def size_text(size: int) -> str:
    """A byte count for messages: ``1 MiB`` when it is whole mebibytes, else ``N bytes``."""
    mib = 1024 * 1024
    return f"{size // mib} MiB" if size >= mib and size % mib == 0 else f"{size} bytes"


def check_token_value(value: str) -> str | None:
    """What is wrong with a token value (a control character), or None."""
    return "it holds a control character" if _CONTROL.search(value) else None


def _two_headers(response: httpx.Response) -> tuple[str, str | None]:
    """``Content-Type`` (empty if none) and ``Retry-After`` (None if none), found in one pass over the headers.

    As ``response.headers.get`` gives them (several values joined by ", "), without its working out
    an encoding for every header first; these two are ASCII by definition (UTF-8, then Latin-1, if not).
    """
    found: dict[bytes, list[bytes]] = {}
    for name, value in response.headers.raw:
        lowered = name.lower()
        if lowered == b"content-type" or lowered == b"retry-after":
            found.setdefault(lowered, []).append(value)
    content_type, retry_after = found.get(b"content-type"), found.get(b"retry-after")
    return (
        _header_text(b", ".join(content_type)) if content_type else "",
        _header_text(b", ".join(retry_after)) if retry_after else None,
    )


def _header_text(value: bytes) -> str:
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")


def _decode(response: httpx.Response, kind: str, max_body: int, content_type: str) -> dict[str, typing.Any] | str:
    """The body as a mapping, or what is wrong with it (``content_type``: the header's value, "" if none)."""
    if len(response.content) > max_body:
        return f"a body over {size_text(max_body)}"
    content_type = content_type.partition(";")[0].strip().lower()
    if content_type == "text/html":
        return "an HTML page, not a token"
    try:
        # JSON is UTF-8 (RFC 8259 §8.1); a token answer in another encoding would be guessed at, not read.
        text = response.content.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        return "a body that is not valid UTF-8"
    if not text:
        return "an empty body"
    if text.startswith("<"):
        return "an HTML page, not a token"
    if kind == "text":
        return {"access_token": text}
    try:
        data = json.loads(text)
    except RecursionError:
        return "JSON nested too deeply"
    except ValueError:
        pass
    else:
        if not isinstance(data, dict):
            return "JSON that is not an object"
        return "JSON nested too deeply" if _too_deep(data) else typing.cast("dict[str, typing.Any]", data)
    # GitHub answers a form when the request has no `Accept: application/json`.
    if content_type == "application/x-www-form-urlencoded" or _FORM.fullmatch(text):
        return dict(parse_qsl(text, keep_blank_values=True))
    return f"a body that is neither JSON nor a form (content type {content_type or 'not given'})"


def _too_deep(value: typing.Any, limit: int = 32) -> bool:
    """Whether containers nest deeper than ``limit`` (later steps walk the body recursively)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        if children and depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def lookup(data: typing.Any, path: str) -> typing.Any:
    """The value at a dotted path (digits index lists), or None."""
    for segment in path.split("."):
        if isinstance(data, Mapping):
            data = data.get(segment)
        elif isinstance(data, list) and segment.isdigit() and int(segment) < len(data):
            data = data[int(segment)]
        else:
            return None
    return data


def _first_string(data: Mapping[str, typing.Any], paths: Sequence[str]) -> str | None:
    values = (lookup(data, path) for path in paths)
    return next((value for value in values if isinstance(value, str) and value), None)


def _error_of(data: Mapping[str, typing.Any]) -> tuple[str | None, str | None]:
    """The OAuth ``error`` and ``error_description`` of a body (a nested ``{code, message}`` too)."""
    error, description = data.get("error"), data.get("error_description") or data.get("message")
    if isinstance(error, Mapping):
        description = description or error.get("message")
        error = error.get("code") or error.get("type") or error.get("status")
    if error in (None, "") and data.get("ok") is False:
        error = "not_ok"  # Slack's `ok: false` without an error code
    return (str(error) if error not in (None, "") else None), (description if isinstance(description, str) else None)


def _permanent(error: str | None, status: int) -> bool:
    if error in TRANSIENT_ERRORS or status in (408, 429) or status >= 500:
        return False
    return error in PERMANENT_ERRORS or status in (400, 401)


def _refusal(answer: _Answer, error: str | None, description: str | None) -> TokenEndpointError:
    code = answer.clean(error, 100) if error else None
    what = f"{answer.status} {code}" if code else str(answer.status)
    if description:
        what += f": {answer.clean(description, _DESCRIPTION_LIMIT)}"
    return answer.fail(what, error=code, permanent=_permanent(error, answer.status))


def _number(value: typing.Any, field: str, answer: _Answer) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise answer.unusable(field, "not a number")
    try:
        number = float(value)
    except ValueError:
        raise answer.unusable(field, "not a number") from None
    if not math.isfinite(number):
        raise answer.unusable(field, "not a finite number")
    if number < 0:
        raise answer.unusable(field, "negative")
    return number


def _instant(value: typing.Any, spec: TokenResponse, answer: _Answer) -> datetime:
    assert spec.expires_at is not None
    field, fmt = spec.expires_at.path, spec.expires_at.format
    if fmt == "iso8601":
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None:
            raise answer.unusable(field, "not an ISO 8601 time")
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    seconds = _number(value, field, answer) / (1000 if fmt == "unix_ms" else 1)
    if seconds > _MAX_SECONDS * 2:
        raise answer.unusable(field, "out of range")
    return datetime.fromtimestamp(seconds, UTC)


def _jwt_expiry(token: str) -> datetime | None:
    """The ``exp`` of a JWT access token, read without verifying (we only want to know when to refresh)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not 0 < exp < _MAX_SECONDS * 2:
        return None
    return datetime.fromtimestamp(exp, UTC)


def _expiry(
    data: Mapping[str, typing.Any],
    spec: TokenResponse,
    token: str,
    now: datetime,
    answer: _Answer,
    default_ttl: timedelta | None,
) -> datetime | None:
    """Expiry from ``expires_at``, else ``expires_in``, else the JWT's ``exp``, else ``default_ttl``."""
    if spec.expires_at is not None:
        value = lookup(data, spec.expires_at.path)
        if value not in (None, ""):
            return _instant(value, spec, answer)
    if spec.expires_in is not None:
        value = lookup(data, spec.expires_in.path)
        if value not in (None, ""):
            seconds = _number(value, spec.expires_in.path, answer) / (1000 if spec.expires_in.unit == "ms" else 1)
            if seconds > _MAX_SECONDS:
                raise answer.unusable(spec.expires_in.path, "out of range")
            if seconds > 0:  # 0 is how some providers say "does not expire": fall through
                return (now + timedelta(seconds=seconds)).astimezone(UTC)
    jwt_expiry = _jwt_expiry(token)
    if jwt_expiry is not None or default_ttl is None:
        return jwt_expiry
    return (now + default_ttl).astimezone(UTC)


def _scopes(data: Mapping[str, typing.Any], paths: Sequence[str]) -> list[str] | None:
    for path in paths:
        value = lookup(data, path)
        if isinstance(value, str):
            return [item for item in re.split(r"[\s,]+", value) if item]
        if isinstance(value, list):
            return [str(item) for item in value if isinstance(item, str | int)]
    return None


def _without_secrets(value: typing.Any, names: frozenset[str]) -> typing.Any:
    """A copy of ``value`` without any key in ``names``, at any depth."""
    if isinstance(value, Mapping):
        return {k: _without_secrets(v, names) for k, v in value.items() if k not in names}
    if isinstance(value, list):
        return [_without_secrets(item, names) for item in value]
    return value


#: ``_names_of``'s answers by the id of the ``TokenResponse`` they were worked out for (kept with it: ids are reused).
_NAMES: dict[int, tuple[TokenResponse, frozenset[str], frozenset[str]]] = {}


def _names_of(spec: TokenResponse) -> tuple[frozenset[str], frozenset[str]]:
    """The top-level names ``_extra`` leaves out (standard and configured ones, secrets) and the secret names."""
    cached = _NAMES.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1], cached[2]
    token_paths = [*spec.access_token, *spec.refresh_token]
    secret_names = _SECRET_FIELDS | {path.rpartition(".")[2] for path in token_paths}
    configured = [*token_paths, *spec.token_type, *spec.scope]
    configured += [spec.expires_in.path] if spec.expires_in else []
    configured += [spec.expires_at.path] if spec.expires_at else []
    left_out = _STANDARD | {path for path in configured if "." not in path} | secret_names
    if len(_NAMES) >= 1024:  # bounded: specs are few, but each edit of one makes a new object
        _NAMES.clear()
    _NAMES[id(spec)] = (spec, frozenset(left_out), frozenset(secret_names))
    return frozenset(left_out), frozenset(secret_names)


def _extra(data: Mapping[str, typing.Any], spec: TokenResponse) -> dict[str, typing.Any]:
    """Every other top-level field; no token at any depth (Slack's ``authed_user`` keeps its ``id``)."""
    left_out, secret_names = _names_of(spec)
    return {k: _without_secrets(v, secret_names) for k, v in data.items() if k not in left_out}


def parse_token_response(
    integration: Integration,
    response: httpx.Response,
    *,
    now: datetime,
    endpoint: Deferred[str],
    default_ttl: timedelta | None = None,
    previous_refresh_token: str | None = None,
    secrets: Deferred[typing.Sequence[str | None]] = (),
    max_body: int = MAX_BODY_BYTES,
) -> TokenSet:
    """Read a token endpoint's answer (already read into memory) into a ``TokenSet``.

    Args:
        integration: an OAuth 2.0 or custom token integration; its ``token_response`` says where
            things are.
        response: the answer, with its body read.
        now: the current, timezone-aware time; ``expires_in`` counts from it.
        endpoint: the URL that was called (its query is left out of messages); or the function making
            it, called only when a message needs it.
        default_ttl: the lifetime to assume when the answer states none (custom token's ``ttl``).
        previous_refresh_token: kept when the answer brings no new refresh token.
        secrets: values the request carried, scrubbed (in every encoding) from text quoted back (or the
            function making them, called only when text is quoted back).
        max_body: the largest body accepted (AUTHBRIDGE_MAX_UPSTREAM_BODY).

    Raises:
        TokenEndpointError: the endpoint refused (``error``, ``status``, and ``permanent`` when only
            a new authorization helps), or its answer holds no usable token. The message never
            quotes a token, a secret or the raw body.
        TypeError: the integration does not request tokens.
    """
    auth = integration.auth
    if not isinstance(auth, OAuth2Auth | CustomTokenAuth | JwtBearerAuth):
        raise TypeError(f"integration {integration.key} does not use a token endpoint")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    spec = auth.token_response
    # The integration's own default_ttl wins over the caller's (custom token's `ttl`).
    default_ttl = spec.default_ttl or default_ttl
    content_type, retry_after = _two_headers(response)
    answer = _Answer(
        integration.key,
        endpoint,
        response.status_code,
        retry_after=_retry_after(retry_after, now),
    )
    decoded = _decode(response, spec.body if response.is_success else "json", max_body, content_type)
    if isinstance(decoded, str):
        status, ok = response.status_code, response.is_success
        what = f"{decoded} (status {status})" if ok or decoded.startswith("an HTML") else f"{status} with {decoded}"
        raise answer.fail(what, permanent=not ok and _permanent(None, status))

    def known_secrets() -> tuple[str, ...]:
        # Anything the request carried that is secret is scrubbed from text quoted back (e.g. a description
        # repeating the code, the verifier or the password), and the tokens of the answer itself.
        basic = basic_credentials(getattr(auth, "client_id", None), integration.client_secret)
        known = (integration.client_secret, *basic, previous_refresh_token, *resolve(secrets))
        token_values = [lookup(decoded, path) for path in [*spec.access_token, *spec.refresh_token]]
        found = (*known, *(value for value in token_values if isinstance(value, str)))
        return tuple(s for s in found if s and len(s) >= 4)

    answer._secrets = known_secrets
    error, description = _error_of(decoded)
    if not response.is_success or error is not None:
        raise _refusal(answer, error, description)
    # A text body is the token itself, whatever the paths say.
    access_token = decoded["access_token"] if spec.body == "text" else _first_string(decoded, spec.access_token)
    if access_token is None:
        tried = ", ".join(spec.access_token)
        raise answer.fail(f"no access token (looked for {tried}) (status {response.status_code})")
    refresh_token = _first_string(decoded, spec.refresh_token)
    for field, value in (("access token", access_token), ("refresh token", refresh_token)):
        problem = check_token_value(value) if value is not None else None
        if problem:
            raise answer.unusable(field, problem)
    token_type = _first_string(decoded, spec.token_type)
    if token_type is not None and token_type.lower() not in {t.lower() for t in spec.accept_token_types}:
        accepted = ", ".join(spec.accept_token_types)
        raise answer.unusable(
            "token_type",
            f"{answer.clean(token_type, 40)!r} is not one the integration accepts: {accepted}; "
            "list it in token_response.accept_token_types if it is meant",
        )
    return TokenSet(
        access_token=access_token,
        refresh_token=refresh_token or previous_refresh_token,
        token_type=token_type,
        expires_at=_expiry(decoded, spec, access_token, now, answer, default_ttl),
        scopes=_scopes(decoded, spec.scope),
        extra=_extra(decoded, spec),
        raw=decoded,
    )


def callback_fields(integration: Integration, query: Mapping[str, str]) -> dict[str, str]:
    """The query parameters of the OAuth redirect that ``callback.capture`` keeps (those present)."""
    auth = integration.auth
    if not isinstance(auth, OAuth2Auth):
        return {}
    return {name: query[name] for name in auth.callback.capture if name in query}
