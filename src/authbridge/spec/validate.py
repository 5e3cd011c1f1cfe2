"""Validation of a whole spec (every problem at once) and of connection parameter values."""

from __future__ import annotations

import difflib
import re
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

import pydantic
from pydantic_core import ErrorDetails

from authbridge.errors import ErrorItem, ParameterError, SpecError, TemplateError
from authbridge.spec.models import (
    CREDENTIAL_NAMES,
    HMAC_EARLY_NAMES,
    HMAC_NAMES,
    MAX_KEY_LENGTH,
    RESERVED_NAMES,
    SCOPE_PARAMETER,
    ApiTokenAuth,
    AwsSigV4Auth,
    BasicAuth,
    CallbackSpec,
    CustomTokenAuth,
    ExpiresAt,
    ExpiresIn,
    HmacSignatureAuth,
    Hooks,
    Integration,
    JwtAuth,
    JwtBearerAuth,
    JwtTemplate,
    NoneAuth,
    OAuth1Auth,
    OAuth2Auth,
    Parameter,
    RefreshPolicy,
    RefreshRequest,
    RequestSpec,
    TestRequest,
    TokenPlacement,
    TokenResponse,
    compile_pattern,
)
from authbridge.spec.secret_hosts import host_allowed, secret_host_errors
from authbridge.spec.templating import (
    check_url_template,
    dns_name_problem,
    dot_segment,
    reference_contexts,
    references_of,
    render_header,
    render_path,
    render_url,
)

__all__ = ["MAX_PARAMETER_LENGTH", "check_parameter_values", "validate_spec"]

#: The longest parameter value accepted by default; the server passes AUTHBRIDGE_MAX_PARAMETER_LENGTH down.
MAX_PARAMETER_LENGTH = 2048

Kind = typing.Literal["url", "text", "header"]
LineOf = Callable[[str], int | None]
AllowHttp = Callable[[str], bool]

_AUTH_MODELS: dict[str, type[pydantic.BaseModel]] = {
    typing.cast("str", model.model_fields["type"].default): model
    for model in (
        OAuth2Auth,
        CustomTokenAuth,
        JwtBearerAuth,
        JwtAuth,
        ApiTokenAuth,
        BasicAuth,
        NoneAuth,
        OAuth1Auth,
        AwsSigV4Auth,
        HmacSignatureAuth,
    )
}
# The model of each block of a spec, by dotted path ("#" for a list index); `auth` depends on its type.
_BLOCKS: dict[str, type[pydantic.BaseModel]] = {
    "": Integration,
    "parameters.#": Parameter,
    "auth.token_response": TokenResponse,
    "auth.token_response.expires_in": ExpiresIn,
    "auth.token_response.expires_at": ExpiresAt,
    "auth.callback": CallbackSpec,
    "auth.hooks": Hooks,
    "auth.assertion": JwtTemplate,
    "token": TokenPlacement,
    "request": RequestSpec,
    "refresh": RefreshPolicy,
    "refresh.request": RefreshRequest,
    "test": TestRequest,
}
# What the user enters at connect time and request headers may place, by auth type (default: the token).
_PLACED = {
    "basic": frozenset({"username", "password"}),
    "aws_sigv4": frozenset(),
    "hmac_signature": frozenset({"key_id"}),
}
# Built-in names a field may use besides declared parameters.
_TOKEN_REQUEST = frozenset({"client_id", "client_secret", "username", "password"})
_REFRESH_REQUEST = _TOKEN_REQUEST | {"token", "refresh_token"}
_CLIENT_ID = frozenset({"client_id"})
# A stand-in value that fits any part of a URL or header, and one that fits a whole-URL placeholder.
_DUMMY, _DUMMY_URL = "1", "https://example.com"


class _Field(typing.NamedTuple):
    """A templated field of a spec and what it may refer to."""

    path: str
    value: object
    kind: Kind
    builtins: frozenset[str]
    credentials: bool
    #: Credential fields that exist here although credentials do not yet (callback captures in token_url).
    captured: frozenset[str] = frozenset()
    #: Values earlier token steps captured, usable here as ``{captured.<name>}``.
    step_captures: frozenset[str] = frozenset()


def _field_names(model: type[pydantic.BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _auth_fields(auth_type: object) -> frozenset[str]:
    """The fields an auth block of this type has (all of them when the type is unknown)."""
    if isinstance(auth_type, str) and auth_type in _AUTH_MODELS:
        return frozenset(_field_names(_AUTH_MODELS[auth_type]))
    return frozenset(name for model in _AUTH_MODELS.values() for name in _field_names(model))


def _fields(data: Mapping[str, typing.Any]) -> Iterator[_Field]:
    """Every templated field of a raw spec (fields its auth type does not have are left to the model)."""
    raw_auth = data.get("auth")
    auth: Mapping[str, typing.Any] = raw_auth if isinstance(raw_auth, Mapping) else {}
    auth_type = auth.get("type")
    auth = {key: value for key, value in auth.items() if key in _auth_fields(auth_type)}
    placed = _PLACED.get(str(auth_type), frozenset({"token"}))
    yield from _one(auth, "auth", "authorization_url", "url", _CLIENT_ID, False)
    yield from _one(auth, "auth", "request_token_url", "url", frozenset(), False)
    yield from _one(auth, "auth", "access_token_url", "url", frozenset(), False)
    yield from _one(auth, "auth", "realm", "header", frozenset(), False)
    yield from _one(auth, "auth", "issuer", "url", frozenset(), False)
    yield from _one(auth, "auth", "discovery", "url", frozenset(), False)
    yield from _one(auth, "auth", "registration_url", "url", frozenset(), False)
    yield from _one(auth, "auth", "protected_resource", "url", frozenset(), False)
    yield from _one(auth, "auth", "resource", "url", frozenset(), False)
    for field in _one(auth, "auth", "token_url", "url", _TOKEN_REQUEST - {"client_secret"}, False):
        yield field._replace(captured=_captures(auth))
    yield from _one(auth, "auth", "revoke_url", "url", _CLIENT_ID, True)
    yield from _one(auth, "auth", "client_id", "text", frozenset(), False)
    yield from _many(auth, "auth", "authorize_params", "text", _CLIENT_ID, False)
    yield from _many(auth, "auth", "token_params", "text", _TOKEN_REQUEST, False)
    yield from _many(auth, "auth", "token_headers", "header", _TOKEN_REQUEST, False)
    yield from _step_fields(auth)
    yield from _one(auth, "auth", "client_key_id", "text", frozenset(), False)
    for prefix, block in _jwt_blocks(auth):
        yield from _jwt_fields(block, prefix)
    yield from _one(auth, "auth", "region", "text", frozenset(), True)
    yield from _one(auth, "auth", "service", "text", frozenset(), True)
    yield from _one(auth, "auth", "string_to_sign", "text", HMAC_NAMES, True)
    yield from _many(auth, "auth", "headers", "header", HMAC_EARLY_NAMES, True)
    yield from _many(auth, "auth", "query", "text", HMAC_EARLY_NAMES, True)
    signature = auth.get("signature")
    if isinstance(signature, Mapping):
        where: Kind = "header" if signature.get("in", "header") == "header" else "text"
        yield from _one(signature, "auth.signature", "template", where, HMAC_NAMES | {"signature"}, True)
    token = data.get("token")
    if isinstance(token, Mapping):
        kind: Kind = "header" if token.get("in", "header") == "header" else "text"
        yield from _one(token, "token", "template", kind, placed, True)
    request = data.get("request")
    if isinstance(request, Mapping):
        yield from _one(request, "request", "base_url", "url", _CLIENT_ID, True)
        yield from _many(request, "request", "headers", "header", _CLIENT_ID | placed, True)
        yield from _many(request, "request", "query", "text", _CLIENT_ID | placed, True)
    refresh = data.get("refresh")
    if isinstance(refresh, Mapping) and isinstance(refresh.get("request"), Mapping):
        rr = refresh["request"]
        yield from _one(rr, "refresh.request", "url", "url", _CLIENT_ID, True)
        yield from _many(rr, "refresh.request", "params", "text", _REFRESH_REQUEST, True)
        yield from _many(rr, "refresh.request", "headers", "header", _REFRESH_REQUEST, True)
    test = data.get("test")
    if isinstance(test, Mapping):
        yield from _one(test, "test", "path", "text", _CLIENT_ID | placed, True)
        yield from _many(test, "test", "headers", "header", _CLIENT_ID | placed, True)


def _steps(auth: Mapping[str, typing.Any]) -> list[tuple[str, Mapping[str, typing.Any]]]:
    """The token steps of a raw auth block, with their spec paths."""
    steps = auth.get("steps")
    items = steps if isinstance(steps, list) else []
    return [(f"auth.steps.{i}", step) for i, step in enumerate(items) if isinstance(step, Mapping)]


def _step_jwt_blocks(auth: Mapping[str, typing.Any]) -> Iterator[tuple[str, Mapping[str, typing.Any]]]:
    """The JWTs the token steps sign (``auth.steps[i].jwt``)."""
    for prefix, step in _steps(auth):
        if isinstance(step.get("jwt"), Mapping):
            yield f"{prefix}.jwt", step["jwt"]


def _step_fields(auth: Mapping[str, typing.Any]) -> Iterator[_Field]:
    """The templated fields of ``auth.steps``; each may use what the steps before it captured."""
    captured: frozenset[str] = frozenset()
    builtins = _TOKEN_REQUEST - {"client_secret"}
    for prefix, step in _steps(auth):
        signed = builtins | {"jwt"} if isinstance(step.get("jwt"), Mapping) else builtins
        fields = [
            *_one(step, prefix, "url", "url", builtins, False),
            *_many(step, prefix, "params", "text", signed, False),
            *_many(step, prefix, "headers", "header", signed, False),
            *(_jwt_fields(step["jwt"], f"{prefix}.jwt") if isinstance(step.get("jwt"), Mapping) else ()),
        ]
        yield from (field._replace(step_captures=captured) for field in fields)
        capture = step.get("capture")
        captured |= frozenset(k for k in capture if isinstance(k, str)) if isinstance(capture, Mapping) else set()


def _jwt_blocks(auth: Mapping[str, typing.Any]) -> Iterator[tuple[str, Mapping[str, typing.Any]]]:
    """The JWTs AuthBridge signs in an auth block: the block itself (``type: jwt``) or its ``assertion``."""
    if auth.get("type") == "jwt":
        yield "auth", auth
    assertion = auth.get("assertion")
    if isinstance(assertion, Mapping):
        yield "auth.assertion", assertion


def _jwt_fields(block: Mapping[str, typing.Any], prefix: str) -> Iterator[_Field]:
    """The templates of a JWT: its key, kid, and every string in its header and claims (nested too)."""
    yield from _one(block, prefix, "key", "text", frozenset(), False)
    yield from _one(block, prefix, "kid", "text", frozenset(), False)
    for name in ("header", "claims"):
        yield from _json_strings(block.get(name), f"{prefix}.{name}")


def _json_strings(value: object, path: str) -> Iterator[_Field]:
    if isinstance(value, str):
        yield _Field(path, value, "text", frozenset(), False)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _json_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_strings(item, f"{path}.{index}")


def _key_errors(data: Mapping[str, typing.Any]) -> list[ErrorItem]:
    """A signing key must come from secret parameters: a plain one would be shown in the console and the API."""
    auth = data.get("auth")
    declared = _declared(data)
    errors: list[ErrorItem] = []
    raw = auth if isinstance(auth, Mapping) else {}
    for prefix, block in [*_jwt_blocks(raw), *_step_jwt_blocks(raw)]:
        source = _templates(block.get("key", "{private_key}"))
        refs = frozenset().union(*(_safe_refs(item) for item in _as_list(source))) if source is not None else None
        if refs is None:
            continue
        if not refs:
            errors.append(ErrorItem(f"{prefix}.key", "must reference a secret parameter, such as {private_key}"))
        for ref in sorted(refs):
            param = declared.get(ref)
            if param is not None and not param.get("secret") and ref != "password":
                errors.append(
                    ErrorItem(f"{prefix}.key", f"{{{ref}}} holds a key: declare the parameter with secret: true")
                )
            elif param is None and "key" not in block:
                errors.append(ErrorItem(f"{prefix}.key", f"references {{{ref}}}: declare a secret parameter {ref}"))
    return errors


def _one(
    block: Mapping[str, typing.Any], prefix: str, name: str, kind: Kind, builtins: frozenset[str], creds: bool
) -> Iterator[_Field]:
    if block.get(name) is not None:
        yield _Field(f"{prefix}.{name}", block[name], kind, builtins, creds)


def _many(
    block: Mapping[str, typing.Any], prefix: str, name: str, kind: Kind, builtins: frozenset[str], creds: bool
) -> Iterator[_Field]:
    values = block.get(name)
    if isinstance(values, Mapping):
        for key, value in values.items():
            yield _Field(f"{prefix}.{name}.{key}", value, kind, builtins, creds)


def _templates(value: object) -> str | list[str] | None:
    """The field's template(s), or None when the value is not text (the model reports that)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    return None


def _scope_parameter_errors(data: Mapping[str, typing.Any]) -> list[ErrorItem]:
    """A scope written ``{name}`` takes a parameter's value: the parameter must exist and not be secret."""
    auth = data.get("auth")
    scopes = auth.get("scopes") if isinstance(auth, Mapping) else None
    if not isinstance(scopes, list):
        return []
    declared = _declared(data)
    errors: list[ErrorItem] = []
    for index, scope in enumerate(scopes):
        if not isinstance(scope, str) or not SCOPE_PARAMETER.fullmatch(scope):
            continue
        param = declared.get(scope[1:-1])
        if param is None:
            errors.append(ErrorItem(f"auth.scopes.{index}", f"{scope} names no parameter of this integration"))
        elif param.get("secret"):
            errors.append(ErrorItem(f"auth.scopes.{index}", f"{scope} names a secret parameter (scopes are public)"))
    return errors


def _declared(data: Mapping[str, typing.Any]) -> dict[str, Mapping[str, typing.Any]]:
    params = data.get("parameters")
    if not isinstance(params, list):
        return {}
    return {p["name"]: p for p in params if isinstance(p, Mapping) and isinstance(p.get("name"), str)}


def _reference_errors(data: Mapping[str, typing.Any]) -> list[ErrorItem]:
    """Unknown references and functions, unsafe URL shapes: found when a spec is saved, not at run time."""
    declared = _declared(data)
    url_params = {name for name, p in declared.items() if p.get("format") == "url"}
    errors: list[ErrorItem] = []
    for field in _fields(data):
        source = _templates(field.value)
        if source is None:
            continue
        try:
            refs = references_of(source)
        except TemplateError as exc:
            errors.append(ErrorItem(field.path, _strip_field(str(exc), field.path)))
            continue
        for ref in sorted(refs):
            problem = _reference_problem(ref, declared, field)
            if problem:
                errors.append(ErrorItem(field.path, problem))
        if field.kind == "url":
            whole = url_params | {r for r in refs if r.startswith("credentials.")}
            for message in check_url_template(source, field=field.path, whole_url_names=whole):
                errors.append(ErrorItem(field.path, _strip_field(message, field.path)))
        if field.path == "request.base_url" and any("?" in t or "#" in t for t in _as_list(source)):
            # Request paths are appended to the base URL: a query there would swallow them.
            errors.append(
                ErrorItem(field.path, "cannot carry a query or fragment; put query parameters in request.query")
            )
    auth = data.get("auth")
    token = data.get("token")
    auth_type = auth.get("type") if isinstance(auth, Mapping) else "none"
    if auth_type in {"oauth2", "custom_token", "jwt_bearer", "jwt", "api_token"} and isinstance(token, Mapping):
        template = token.get("template")
        if isinstance(template, str) and "token" not in _safe_refs(template):
            errors.append(ErrorItem("token.template", "must contain {token}, where the token goes"))
    return errors


_CONTROL = frozenset(chr(code) for code in (*range(0x20), 0x7F))
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# The maps whose keys are header names, by their path in the spec.
_HEADER_MAPS = (("auth", "token_headers"), ("request", "headers"), ("refresh.request", "headers"), ("test", "headers"))


def _control_errors(data: Mapping[str, typing.Any]) -> list[ErrorItem]:
    """Control characters written into a header, a URL, the token template or the test path.

    Refused when the spec is saved rather than at the first request: CR, LF or NUL in a header
    would split or end it (HTAB is the one control a header value may hold), and in a URL they are
    never valid. Body and query fields are left alone: their values are encoded where they go.
    """
    errors: list[ErrorItem] = []
    for field in _fields(data):
        if field.kind == "text" and field.path not in ("token.template", "test.path"):
            continue
        allowed = {"\t"} if field.kind == "header" or field.path == "token.template" else set()
        source = _templates(field.value)
        if source is not None and any((_CONTROL - allowed) & set(item) for item in _as_list(source)):
            errors.append(
                ErrorItem(field.path, "contains a control character (line break, NUL...), which cannot be sent")
            )
    return errors


def _dot_segment_errors(data: Mapping[str, typing.Any]) -> list[ErrorItem]:
    """A ``.`` or ``..`` segment written into a URL or the test path: normalization would remove it."""
    errors: list[ErrorItem] = []
    for field in _fields(data):
        source = _templates(field.value)
        if source is None or (field.kind != "url" and field.path != "test.path"):
            continue
        for item in _as_list(source):
            try:
                path = urlsplit(item).path if field.kind == "url" else item.partition("?")[0].partition("#")[0]
            except ValueError:
                continue  # the URL checks report it
            if dot_segment(path):
                errors.append(ErrorItem(field.path, "has a '.' or '..' path segment, which would climb out"))
                break
    return errors


def _captures(auth: Mapping[str, typing.Any]) -> frozenset[str]:
    """The callback fields an authorization-code token request may use as ``{credentials.<name>}``."""
    callback = auth.get("callback")
    capture = callback.get("capture") if isinstance(callback, Mapping) else None
    code_flow = auth.get("type") == "oauth2" and auth.get("grant_type", "authorization_code") == "authorization_code"
    if not code_flow or not isinstance(capture, list):
        return frozenset()
    return frozenset(name for name in capture if isinstance(name, str))


def _capture_errors(data: Mapping[str, typing.Any]) -> list[ErrorItem]:
    """Where a captured callback field may go in ``token_url``, which receives the client secret.

    The redirect's query comes through the user's browser, so anyone who starts a flow can change it.
    In the path or query a value is percent-encoded and cannot move the request; in the host it
    chooses where the client secret goes, so it must be constrained by a pattern
    (``auth.callback.patterns``); it can never supply the whole URL or the port.
    """
    auth = data.get("auth")
    if not isinstance(auth, Mapping):
        return []
    callback = auth.get("callback")
    patterns = callback.get("patterns") if isinstance(callback, Mapping) else None
    constrained = set(patterns) if isinstance(patterns, Mapping) else set()
    errors: list[ErrorItem] = []
    for field in _fields(data):
        source = _templates(field.value)
        if field.path != "auth.token_url" or source is None:
            continue
        try:
            contexts = reference_contexts(source)
        except TemplateError:
            continue  # reported by the reference checks
        for name in sorted(field.captured):
            where = contexts.get(f"credentials.{name}", frozenset())
            if where & {"whole", "port", "scheme", "user info"}:
                errors.append(
                    ErrorItem(
                        field.path,
                        f"{{credentials.{name}}} comes from the callback: it cannot supply the URL's origin or port",
                    )
                )
            elif "host" in where and name not in constrained:
                errors.append(
                    ErrorItem(
                        field.path,
                        f"{{credentials.{name}}} comes from the callback and is in the host, where it would choose "
                        f"who receives the client secret: constrain it in auth.callback.patterns.{name}, "
                        "or use it only in the path or query",
                    )
                )
    return errors


def _step_capture_errors(data: Mapping[str, typing.Any]) -> list[ErrorItem]:
    """A captured value (chosen by the provider's answer) may go in a step URL's path or query, never its origin.

    In the host it would let an answer choose where the next step (with its secrets) is sent.
    """
    errors: list[ErrorItem] = []
    for field in _fields(data):
        source = _templates(field.value)
        if field.kind != "url" or not field.step_captures or source is None:
            continue
        try:
            contexts = reference_contexts(source)
        except TemplateError:
            continue  # reported by the reference checks
        for ref, where in sorted(contexts.items()):
            if ref.startswith("captured.") and where - {"path", "query", "fragment"}:
                errors.append(
                    ErrorItem(
                        field.path,
                        f"{{{ref}}} comes from an answer: it may go in the URL's path or query, not its host, "
                        "port or the whole URL",
                    )
                )
    return errors


def _credential_name_errors(data: Mapping[str, typing.Any]) -> list[ErrorItem]:
    """Parameters named username or password where the user enters those as credentials."""
    auth = data.get("auth")
    auth_type = auth.get("type") if isinstance(auth, Mapping) else None
    grant = auth.get("grant_type", "authorization_code") if isinstance(auth, Mapping) else None
    if auth_type == "basic":
        where = "auth type basic"
    elif auth_type == "oauth2" and grant == "password":
        where = "the password grant"
    else:
        return []
    params = data.get("parameters")
    return [
        ErrorItem(
            f"parameters.{index}.name",
            f"with {where}, {{{param['name']}}} is the credential entered when connecting; choose another name",
        )
        for index, param in enumerate(params if isinstance(params, list) else [])
        if isinstance(param, Mapping) and param.get("name") in CREDENTIAL_NAMES
    ]


def _header_name_errors(data: Mapping[str, typing.Any]) -> list[ErrorItem]:
    """Header names must be HTTP tokens (RFC 9110 §5.1): no space, colon, control character or non-ASCII."""
    errors: list[ErrorItem] = []
    maps: list[tuple[str, str, object]] = []
    for path, name in _HEADER_MAPS:
        block: object = data
        for step in path.split("."):
            block = block.get(step) if isinstance(block, Mapping) else None
        maps.append((path, name, block.get(name) if isinstance(block, Mapping) else None))
    auth = data.get("auth")
    maps += [
        (prefix, "headers", step.get("headers")) for prefix, step in _steps(auth if isinstance(auth, Mapping) else {})
    ]
    for path, name, headers in maps:
        for key in headers if isinstance(headers, Mapping) else ():
            if not isinstance(key, str) or not _HEADER_NAME.fullmatch(key):
                errors.append(ErrorItem(f"{path}.{name}.{key}", "is not a valid HTTP header name"))
    return errors


def _as_list(source: str | list[str]) -> list[str]:
    return [source] if isinstance(source, str) else list(source)


def _safe_refs(source: str) -> frozenset[str]:
    try:
        return references_of(source)
    except TemplateError:
        return frozenset()


def _strip_field(message: str, path: str) -> str:
    return message.removeprefix(f"{path}: ")


def _reference_problem(ref: str, declared: Mapping[str, object], field: _Field) -> str | None:
    if ref.startswith("captured."):
        if ref.removeprefix("captured.") in field.step_captures:
            return None
        return f"references {{{ref}}}, which no earlier token step captures (auth.steps[].capture)"
    if ref.startswith("credentials."):
        if field.credentials or ref.removeprefix("credentials.") in field.captured:
            return None
        only = " (only fields captured from the callback: auth.callback.capture)" if field.captured else ""
        return f"references {{{ref}}}, but credentials do not exist yet here{only}"
    if ref in declared or ref in field.builtins:
        return None
    if ref in RESERVED_NAMES:
        allowed = ", ".join(f"{{{b}}}" for b in sorted(field.builtins)) or "only declared parameters"
        return f"references {{{ref}}}, which is not available in this field (available: {allowed})"
    # Built-in names are short and common words: suggest one only when it is very close.
    hint = difflib.get_close_matches(ref, list(declared), n=1) or difflib.get_close_matches(
        ref, sorted(field.builtins), n=1, cutoff=0.8
    )
    suffix = f" (did you mean {{{hint[0]}}}?)" if hint else ""
    return f"references {{{ref}}}, which is not a declared parameter{suffix}"


_NEEDS: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("oauth2", "authorization_code"): ("authorization_url", "token_url", "client_id"),
    ("oauth2", "client_credentials"): ("token_url", "client_id"),
    ("oauth2", "password"): ("token_url",),
    ("custom_token", None): ("token_url",),
    ("oauth1", "three_legged"): (
        "request_token_url",
        "authorization_url",
        "access_token_url",
        "client_id",
        "client_secret",
    ),
    ("oauth1", "token"): ("client_id", "client_secret"),
    ("jwt_bearer", None): ("token_url",),
    ("aws_sigv4", None): ("region", "service"),
    ("hmac_signature", None): ("string_to_sign",),
}


#: What ``auth.discovery`` supplies when the spec leaves it out.
_DISCOVERED = frozenset({"authorization_url", "token_url"})


def _grant_errors(data: Mapping[str, typing.Any]) -> list[ErrorItem]:
    """What each auth type and grant type needs."""
    auth = data.get("auth")
    if not isinstance(auth, Mapping):
        return []
    kind = str(auth.get("type"))
    grant = str(auth.get("grant_type", "authorization_code")) if kind == "oauth2" else None
    if kind == "oauth1":
        flow = str(auth.get("flow", "three_legged"))
        needs = _NEEDS.get((kind, flow), ())
        reason = f"is required for an oauth1 {flow} integration"
        return [ErrorItem(f"auth.{name}", reason) for name in needs if auth.get(name) in (None, "", [])]
    needs = _NEEDS.get((kind, grant), ())
    discovers = bool(auth.get("discovery") or auth.get("protected_resource"))
    if discovers:
        needs = tuple(name for name in needs if name not in _DISCOVERED)
    registration = auth.get("client_registration")
    if registration in ("dynamic", "auto"):
        needs = tuple(name for name in needs if name != "client_id")
        if not discovers and not auth.get("registration_url"):
            return [
                ErrorItem(
                    "auth.registration_url", f"is required for client_registration {registration} without discovery"
                )
            ]
    reason = f"is required for grant_type {grant}" if grant else f"is required for {kind}"
    if kind == "custom_token" and auth.get("steps"):
        needs = ()  # each step has its own url
    return [ErrorItem(f"auth.{name}", reason) for name in needs if auth.get(name) in (None, "", [])]


def _default_errors(data: Mapping[str, typing.Any]) -> list[ErrorItem]:
    """A parameter's default must itself be a valid value (checked on every parameter the model accepts)."""
    params = data.get("parameters")
    errors: list[ErrorItem] = []
    for index, raw in enumerate(params if isinstance(params, list) else []):
        try:
            param = Parameter.model_validate(raw)
        except pydantic.ValidationError:
            continue  # reported by the model
        if param.default is not None:
            problems = _value_problems(param, param.default, lambda _host: True)
            errors.extend(ErrorItem(f"parameters.{index}.default", problem) for problem in problems)
    return errors


def _clean_path(data: object, loc: Sequence[int | str], kind: str) -> str:
    """The dotted path of a pydantic error, in the terms of the input.

    Pydantic puts steps in ``loc`` that the input does not have: the tag of a discriminated union
    (``auth.oauth2.token_url``), union members or validator names. Walking the input alongside ``loc``
    keeps only the steps that exist in it, plus the name of a missing field.
    """
    parts: list[str] = []
    node = data
    for index, step in enumerate(loc):
        if isinstance(node, Mapping):
            tagged = step == node.get("type") and index + 1 < len(loc)
            if step in node and not tagged:
                parts.append(str(step))
                node = node[step]
            elif kind == "missing" and index == len(loc) - 1:
                parts.append(str(step))
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            parts.append(str(step))
            node = node[step]
    return ".".join(parts)


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping (key: value pairs)",
    "model_type": "must be a mapping (key: value pairs)",
    "model_attributes_type": "must be a mapping (key: value pairs)",
    "string_too_short": "cannot be empty",
    "union_tag_invalid": f"must be one of {', '.join(_AUTH_MODELS)}",
    "union_tag_not_found": f"is required: one of {', '.join(_AUTH_MODELS)}",
}


def _message(err: ErrorDetails) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"must be {expected}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}"
    if kind == "too_short":
        return "cannot be empty" if ctx.get("min_length") == 1 else f"must have at least {ctx['min_length']} items"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    message = str(err["msg"])
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _pydantic_errors(data: Mapping[str, typing.Any], exc: pydantic.ValidationError) -> list[ErrorItem]:
    items = []
    for err in exc.errors():
        path = _clean_path(data, err["loc"], err["type"])
        if err["type"].startswith("union_tag_"):  # the discriminator is wrong or missing: point at it
            discriminator = str(err.get("ctx", {}).get("discriminator", "type")).strip("'")
            path = f"{path}.{discriminator}"
        message = _message(err)
        if err["type"] == "extra_forbidden":
            message = _unknown_field(data, path)
        items.append(ErrorItem(path, message))
    return items


def _unknown_field(data: Mapping[str, typing.Any], path: str) -> str:
    """Say that a field is unknown, with a "did you mean" when a known one is close."""
    parent, _, name = path.rpartition(".")
    block = re.sub(r"\.\d+(?=\.|$)", ".#", parent)
    auth = data.get("auth")
    auth_type = auth.get("type") if isinstance(auth, Mapping) else None
    if block == "auth":
        known = sorted(_auth_fields(auth_type))
    else:
        known = _field_names(_BLOCKS[block]) if block in _BLOCKS else []
    hint = difflib.get_close_matches(name, known, n=1)
    if hint:
        return f"is not a known field (did you mean {hint[0]}?)"
    if block == "auth" and isinstance(auth_type, str) and auth_type in _AUTH_MODELS:
        owners = [kind for kind in _AUTH_MODELS if name in _auth_fields(kind)]
        if owners:
            return f"is not a field of auth type {auth_type} (it belongs to {', '.join(owners)})"
    return "is not a known field"


def validate_spec(data: object, *, source: str | None = None, line_of: LineOf | None = None) -> Integration:
    """Validate a raw spec (parsed YAML or JSON) and return the model, or raise SpecError listing everything.

    Args:
        data: the parsed document.
        source: a file name for messages.
        line_of: maps a dotted field path to its line in the source, when known.
    """
    if not isinstance(data, Mapping):
        raise SpecError([ErrorItem("", "the spec must be a mapping (key: value pairs)")], source=source)
    items: list[ErrorItem] = []
    try:
        integration: Integration | None = Integration.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        integration = None
        items = _pydantic_errors(data, exc)
    rejected = {item.path for item in items}
    checks = _grant_errors(data) + _reference_errors(data) + _default_errors(data) + _key_errors(data)
    checks += _control_errors(data) + _header_name_errors(data) + _dot_segment_errors(data)
    if integration is not None:
        checks += secret_host_errors(integration)
    checks += _step_capture_errors(data) + _scope_parameter_errors(data)
    for item in checks + _capture_errors(data) + _credential_name_errors(data):
        if item.path not in rejected and item not in items:
            items.append(item)
    if items:
        if line_of is not None:
            items = sorted((item._replace(line=line_of(item.path)) for item in items), key=lambda i: i.line or 0)
        raise SpecError(items, source=source)
    assert integration is not None
    return integration


def _format_problem(param: Parameter, value: str, allow_http: AllowHttp | None) -> str | None:
    if param.format == "hostname" and dns_name_problem(value) is not None:
        return "must be a host name (letters, digits, '-' and '.')"
    if param.format == "email" and not _is_email(value):
        return "must be an email address"
    if param.format == "uuid":
        try:
            uuid.UUID(value)
        except ValueError:
            return "must be a UUID"
    if param.format == "url" and not _is_url(value, allow_http):
        return "must be an https URL with a host and no user info"
    return None


def _is_email(value: str) -> bool:
    """``local@domain.tld``: one ``@``, no whitespace, a dot inside the domain. One pass, no regex.

    The regex this replaces (``[^@\\s]+@[^@\\s]+\\.[^@\\s]+``) backtracked quadratically on a
    domain of dots: 20 s for one 40 kB value.
    """
    local, at, domain = value.partition("@")
    if not at or not local or "@" in domain or any(char.isspace() for char in value):
        return False
    return "." in domain[1:-1]


def _is_url(value: str, allow_http: AllowHttp | None) -> bool:
    if not value.isascii() or any(char <= " " or char == "\x7f" for char in value):
        return False
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    if not host or "@" in parts.netloc:
        return False
    scheme = parts.scheme.lower()
    return scheme == "https" or (scheme == "http" and allow_http is not None and allow_http(host))


def _value_problems(param: Parameter, value: str, allow_http: AllowHttp | None) -> list[str]:
    """What is wrong with one value of a parameter; never quotes a secret value."""
    shown = "the value" if param.secret else repr(value)
    problems = []
    if param.pattern is not None and not compile_pattern(param.pattern).fullmatch(value):
        problems.append(f"{shown} does not match {param.pattern}")
    if param.enum is not None and value not in param.enum:
        problems.append(f"{shown} is not one of {', '.join(param.enum)}")
    problem = _format_problem(param, value, allow_http)
    if problem:
        problems.append(problem)
    problem = _hosts_problem(param, value)
    if problem:
        problems.append(problem)
    return problems


def _hosts_problem(param: Parameter, value: str) -> str | None:
    """A value (or the host of a ``format: url`` value) outside the parameter's ``hosts`` allow-list."""
    if param.hosts is None:
        return None
    host: str | None = value
    if param.format == "url":
        try:
            host = urlsplit(value).hostname
        except ValueError:
            host = None
    if host is None or not host_allowed(host, param.hosts):
        return f"must name one of the allowed hosts: {', '.join(param.hosts)}"
    return None


def check_parameter_values(
    integration: Integration,
    values: Mapping[str, object],
    *,
    allow_http: AllowHttp | None = None,
    max_length: int = MAX_PARAMETER_LENGTH,
) -> dict[str, str]:
    """Check a connected account's parameter values; return them with defaults applied.

    Every problem is reported at once in a ParameterError (unknown names, missing required values,
    ``pattern``/``enum``/``format`` mismatches, values the URL and header templates refuse). Messages name
    the parameter, never a secret value.

    Args:
        integration: the integration the connection belongs to.
        values: parameter name to value; None and "" mean "not given".
        allow_http: says whether a ``format: url`` value may use ``http`` to this host.
        max_length: the longest value accepted, in characters (checked before any pattern or format).
    """
    errors: list[ErrorItem] = []
    result: dict[str, str] = {}
    declared = [p.name for p in integration.parameters]
    for name in values:
        if name not in declared:
            hint = difflib.get_close_matches(name, declared, n=1)
            suffix = f" (did you mean {hint[0]}?)" if hint else ""
            errors.append(ErrorItem(f"parameters.{name}", f"is not a parameter of {integration.key}{suffix}"))
    for param in integration.parameters:
        raw = values.get(param.name)
        if raw is None or raw == "":
            if param.default is not None:
                result[param.name] = param.default
            elif param.required:
                errors.append(ErrorItem(f"parameters.{param.name}", "is required"))
            continue
        if not isinstance(raw, str | int | float) or isinstance(raw, bool):
            errors.append(ErrorItem(f"parameters.{param.name}", "must be a string"))
            continue
        longest = max(max_length, MAX_KEY_LENGTH) if param.name in integration.key_parameters else max_length
        if len(str(raw)) > longest:
            errors.append(ErrorItem(f"parameters.{param.name}", f"is longer than {longest} characters"))
            continue
        problems = _value_problems(param, str(raw), allow_http)
        errors.extend(ErrorItem(f"parameters.{param.name}", problem) for problem in problems)
        if not problems:
            result[param.name] = str(raw)
    errors.extend(_render_errors(integration, result, allow_http))
    if errors:
        raise ParameterError(errors)
    return result


def _render_errors(
    integration: Integration, values: Mapping[str, str], allow_http: AllowHttp | None
) -> list[ErrorItem]:
    """Render each URL and header with one parameter's value at a time, so a refused value is named.

    The other references get stand-in values; a template that cannot render even with those is not
    blamed on any value.
    """
    data = integration.model_dump(mode="json", by_alias=True)
    url_params = {p.name for p in integration.parameters if p.format == "url"}
    whole = url_params | {"credentials.*"}
    found: dict[str, ErrorItem] = {}
    for field in _fields(data):
        if field.kind == "text" and field.path != "test.path":
            continue
        for source in [field.value] if isinstance(field.value, str) else typing.cast("list[str]", field.value):
            refs = references_of(source)
            stand_in = {r: _DUMMY_URL if r in url_params or r.startswith("credentials.") else _DUMMY for r in refs}
            if _render_problem(source, stand_in, field, whole, allow_http) is not None:
                continue
            for name in sorted(refs & values.keys() - found.keys()):
                problem = _render_problem(source, {**stand_in, name: values[name]}, field, whole, allow_http)
                if problem is not None:
                    found[name] = ErrorItem(f"parameters.{name}", f"cannot be used in {field.path}: {problem}")
    return list(found.values())


def _render_problem(
    source: str, values: Mapping[str, str], field: _Field, whole: set[str], allow_http: AllowHttp | None
) -> str | None:
    try:
        if field.kind == "url":
            render_url(source, values, field=field.path, whole_url_names=whole, allow_http=allow_http)
        elif field.path == "test.path":
            render_path(source, values, field=field.path)
        else:
            render_header(source, values, field=field.path)
    except TemplateError as exc:
        return _strip_field(str(exc), field.path)
    return None
