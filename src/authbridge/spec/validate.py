"""Validation of a whole spec (every problem at once) and of connection parameter values."""

from __future__ import annotations

import difflib
import re
import typing
import uuid
from collections.abc import Iterator, Mapping

import pydantic

from authbridge.errors import ErrorItem, ParameterError, SpecError, TemplateError
from authbridge.spec.models import RESERVED_NAMES, Integration, OAuth2Auth, Parameter
from authbridge.spec.templating import check_url_template, references_of, render_url

__all__ = ["check_parameter_values", "validate_spec"]

_AUTH_TYPES = ("oauth2", "custom_token", "api_token", "basic", "none")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)

Kind = typing.Literal["url", "text", "header"]
LineOf = typing.Callable[[str], int | None]

# Which built-in names each field may use, besides declared parameters. `True` in the third
# column means credential fields (`{credentials.x}`) are available there too.
_TOKEN_REQUEST = frozenset({"client_id", "client_secret", "username", "password"})
_REFRESH_REQUEST = _TOKEN_REQUEST | {"token", "refresh_token"}


def _fields(data: Mapping[str, typing.Any]) -> Iterator[tuple[str, object, Kind, frozenset[str], bool]]:
    """Every templated field of a raw spec: (path, value, kind, builtins allowed, credentials allowed)."""
    auth = data.get("auth") if isinstance(data.get("auth"), Mapping) else {}
    assert isinstance(auth, Mapping)
    auth_type = auth.get("type")
    placed = frozenset({"token"}) if auth_type != "basic" else frozenset({"username", "password"})
    cid = frozenset({"client_id"})
    yield from _one(auth, "auth", "authorization_url", "url", cid, False)
    yield from _one(auth, "auth", "issuer", "url", frozenset(), False)
    yield from _one(auth, "auth", "token_url", "url", _TOKEN_REQUEST - {"client_secret"}, False)
    yield from _one(auth, "auth", "revoke_url", "url", cid, True)
    yield from _one(auth, "auth", "client_id", "text", frozenset(), False)
    yield from _many(auth, "auth", "authorize_params", "text", cid, False)
    yield from _many(auth, "auth", "token_params", "text", _TOKEN_REQUEST, False)
    yield from _many(auth, "auth", "token_headers", "header", _TOKEN_REQUEST, False)
    token = data.get("token")
    if isinstance(token, Mapping):
        kind: Kind = "header" if token.get("in", "header") == "header" else "text"
        yield from _one(token, "token", "template", kind, placed, True)
    request = data.get("request")
    if isinstance(request, Mapping):
        yield from _one(request, "request", "base_url", "url", cid, True)
        yield from _many(request, "request", "headers", "header", cid | placed, True)
        yield from _many(request, "request", "query", "text", cid | placed, True)
    refresh = data.get("refresh")
    if isinstance(refresh, Mapping) and isinstance(refresh.get("request"), Mapping):
        rr = refresh["request"]
        yield from _one(rr, "refresh.request", "url", "url", cid, True)
        yield from _many(rr, "refresh.request", "params", "text", _REFRESH_REQUEST, True)
        yield from _many(rr, "refresh.request", "headers", "header", _REFRESH_REQUEST, True)
    test = data.get("test")
    if isinstance(test, Mapping):
        yield from _one(test, "test", "path", "text", frozenset(), True)


def _one(
    block: Mapping[str, typing.Any], prefix: str, name: str, kind: Kind, builtins: frozenset[str], creds: bool
) -> Iterator[tuple[str, object, Kind, frozenset[str], bool]]:
    if block.get(name) is not None:
        yield f"{prefix}.{name}", block[name], kind, builtins, creds


def _many(
    block: Mapping[str, typing.Any], prefix: str, name: str, kind: Kind, builtins: frozenset[str], creds: bool
) -> Iterator[tuple[str, object, Kind, frozenset[str], bool]]:
    values = block.get(name)
    if isinstance(values, Mapping):
        for key, value in values.items():
            yield f"{prefix}.{name}.{key}", value, kind, builtins, creds


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
    for path, value, kind, builtins, creds in _fields(data):
        if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            continue  # the model reports the type error
        source = typing.cast("str | list[str]", value)
        try:
            refs = references_of(source)
        except TemplateError as exc:
            errors.append(ErrorItem(path, _strip_field(str(exc), path)))
            continue
        for ref in sorted(refs):
            problem = _reference_problem(ref, declared, builtins, creds)
            if problem:
                errors.append(ErrorItem(path, problem))
        if kind == "url":
            whole = url_params | {r for r in refs if r.startswith("credentials.")}
            for message in check_url_template(source, field=path, whole_url_names=whole):
                errors.append(ErrorItem(path, _strip_field(message, path)))
    token = data.get("token")
    auth = data.get("auth")
    auth_type = auth.get("type") if isinstance(auth, Mapping) else "none"
    if auth_type in {"oauth2", "custom_token", "api_token"} and isinstance(token, Mapping):
        template = token.get("template")
        if isinstance(template, str) and "token" not in _safe_refs(template):
            errors.append(ErrorItem("token.template", "must contain {token}, where the token goes"))
    return errors


def _safe_refs(source: str) -> frozenset[str]:
    try:
        return references_of(source)
    except TemplateError:
        return frozenset()


def _strip_field(message: str, path: str) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _reference_problem(ref: str, declared: Mapping[str, object], builtins: frozenset[str], creds: bool) -> str | None:
    if ref.startswith("credentials."):
        return None if creds else f"references {{{ref}}}, but credentials do not exist yet here"
    if ref in declared or ref in builtins:
        return None
    if ref in RESERVED_NAMES:
        allowed = ", ".join(f"{{{b}}}" for b in sorted(builtins)) or "only declared parameters"
        return f"references {{{ref}}}, which is not available in this field (available: {allowed})"
    hint = difflib.get_close_matches(ref, list(declared), n=1)
    suffix = f" (did you mean {{{hint[0]}}}?)" if hint else ""
    return f"references {{{ref}}}, which is not a declared parameter{suffix}"


def _grant_errors(data: Mapping[str, typing.Any]) -> list[ErrorItem]:
    """What each auth type and grant type needs."""
    auth = data.get("auth")
    if not isinstance(auth, Mapping):
        return []
    errors: list[ErrorItem] = []
    kind = auth.get("type")
    needs: tuple[str, ...] = ()
    if kind == "oauth2":
        grant = auth.get("grant_type", "authorization_code")
        needs = {
            "authorization_code": ("authorization_url", "token_url", "client_id"),
            "client_credentials": ("token_url", "client_id"),
            "password": ("token_url",),
        }.get(str(grant), ())
        for name in needs:
            if auth.get(name) in (None, "", []):
                errors.append(ErrorItem(f"auth.{name}", f"is required for grant_type {grant}"))
    elif kind == "custom_token" and auth.get("token_url") in (None, "", []):
        errors.append(ErrorItem("auth.token_url", "is required for custom_token"))
    return errors


def _pydantic_errors(exc: pydantic.ValidationError) -> list[ErrorItem]:
    items: list[ErrorItem] = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        # Drop the discriminator tag pydantic inserts (`auth.oauth2.token_url` → `auth.token_url`).
        if len(loc) >= 2 and loc[0] == "auth" and loc[1] in _AUTH_TYPES:
            loc.pop(1)
        # Drop the internal union member names of templated fields.
        loc = [
            part
            for part in loc
            if part not in {"str", "list[str]", "function-before[_templated(), union[str,list[str]]]"}
        ]
        path = ".".join(loc)
        items.append(ErrorItem(path, _message(err)))
    return items


def _message(err: typing.Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"must be {expected}"
    if kind == "union_tag_invalid":
        return f"must be one of {', '.join(_AUTH_TYPES)}"
    if kind == "union_tag_not_found":
        return f"needs a type: one of {', '.join(_AUTH_TYPES)}"
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message


def _unknown_field_hints(data: Mapping[str, typing.Any], items: list[ErrorItem]) -> list[ErrorItem]:
    """Add a "did you mean" to unknown fields where a known one is close."""
    known: dict[str, list[str]] = {
        "": list(Integration.model_fields),
        "auth": sorted({*OAuth2Auth.model_fields, "ttl"}),
    }
    out = []
    for item in items:
        if item.message == "is not a known field":
            parent, _, name = item.path.rpartition(".")
            hint = difflib.get_close_matches(name, known.get(parent, []), n=1)
            if hint:
                item = ErrorItem(item.path, f"is not a known field (did you mean {hint[0]}?)")
        out.append(item)
    return out


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
    integration: Integration | None = None
    try:
        integration = Integration.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        items.extend(_unknown_field_hints(data, _pydantic_errors(exc)))
    seen = {(i.path, i.message) for i in items}
    for item in _grant_errors(data) + _reference_errors(data):
        if (item.path, item.message) not in seen:
            items.append(item)
            seen.add((item.path, item.message))
    if items:
        if line_of is not None:
            items = [ErrorItem(i.path, i.message, line_of(i.path)) for i in items]
            items.sort(key=lambda i: i.line or 0)
        raise SpecError(items, source=source)
    assert integration is not None
    return integration


def _format_problem(param: Parameter, value: str) -> str | None:
    fmt = param.format
    if fmt == "hostname" and not _HOSTNAME.match(value):
        return "must be a host name (letters, digits, '-' and '.')"
    if fmt == "email" and not _EMAIL.match(value):
        return "must be an email address"
    if fmt == "uuid":
        try:
            uuid.UUID(value)
        except ValueError:
            return "must be a UUID"
    if fmt == "url" and not re.match(r"^https?://[^/@\s]+", value):
        return "must be an http(s) URL without user info"
    return None


def check_parameter_values(
    integration: Integration,
    values: Mapping[str, object],
    *,
    allow_http: typing.Callable[[str], bool] | None = None,
) -> dict[str, str]:
    """Check a connected account's parameter values; return them with defaults applied.

    Every problem is reported at once in a ParameterError (unknown names, missing required values,
    `pattern`/`enum`/`format` mismatches, values the URL templates refuse). Messages name the
    parameter, never a secret value.
    """
    errors: list[ErrorItem] = []
    result: dict[str, str] = {}
    declared = {p.name: p for p in integration.parameters}
    for name in values:
        if name not in declared:
            hint = difflib.get_close_matches(name, list(declared), n=1)
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
        value = str(raw)
        shown = "the value" if param.secret else repr(value)
        if param.pattern and not re.fullmatch(param.pattern, value):
            errors.append(ErrorItem(f"parameters.{param.name}", f"{shown} does not match {param.pattern}"))
        if param.enum is not None and value not in param.enum:
            errors.append(ErrorItem(f"parameters.{param.name}", f"must be one of {', '.join(param.enum)}"))
        problem = _format_problem(param, value)
        if problem:
            errors.append(ErrorItem(f"parameters.{param.name}", problem))
        result[param.name] = value
    if not errors:
        errors.extend(_render_errors(integration, result, allow_http))
    if errors:
        raise ParameterError(errors)
    return result


def _render_errors(
    integration: Integration, values: Mapping[str, str], allow_http: typing.Callable[[str], bool] | None
) -> list[ErrorItem]:
    """Render every URL that depends only on parameters, so a value the template rules refuse fails now."""
    data = integration.model_dump(mode="json", by_alias=True)
    url_params = {p.name for p in integration.parameters if p.format == "url"}
    errors: list[ErrorItem] = []
    for path, value, kind, _builtins, _creds in _fields(data):
        if kind != "url":
            continue
        source = typing.cast("str | list[str]", value)
        refs = references_of(source)
        if not refs or any(r not in values for r in refs if not r.startswith("credentials.")):
            continue
        if any(r.startswith("credentials.") for r in refs):
            continue
        try:
            render_url(source, values, field=path, whole_url_names=url_params, allow_http=allow_http)
        except TemplateError as exc:
            errors.append(ErrorItem(path, _strip_field(str(exc), path)))
    return errors
