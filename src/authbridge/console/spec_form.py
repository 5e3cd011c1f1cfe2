"""The integration form: every field of the spec, grouped as the seeds group them, and the two conversions.

``spec_to_form`` turns a spec into the form's text values; ``form_to_data`` turns a submitted form back
into spec data for ``validate_spec``; ``field_errors`` puts validation errors (dotted spec paths) next to
the form fields they belong to. Fields of the OAuth 2.0 and custom token sections are named after their
section (``oauth2.token_url``, ``custom_token.token_url``) so both sections can be on the page at once;
only the selected type's section is read.
"""

from __future__ import annotations

import functools
import json
import typing
from collections.abc import Collection

from authbridge.auth import PLUGINS
from authbridge.console.sections import ADVANCED, PARAMETER_FIELDS, SECTIONS, Field
from authbridge.errors import ErrorItem
from authbridge.spec import SECRET_MASK, Integration

__all__ = ["blank_parameter", "field_errors", "form_to_data", "open_sections", "spec_to_form", "stored_secrets"]

Values = dict[str, str]
#: Every auth type's block with its defaults (the registry's order: the first is a new integration's type).
_AUTH_DEFAULTS = {name: plugin.model() for name, plugin in PLUGINS.items()}
_FIRST = next(iter(_AUTH_DEFAULTS))


def _get(data: object, path: str) -> object:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _set(data: dict[str, typing.Any], path: str, value: object) -> None:
    *parents, last = path.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def _templated_text(value: object) -> str:
    if isinstance(value, list | bool):
        return json.dumps(value)
    return "" if value is None else str(value)


def _show(field: Field, value: object) -> str:
    """A spec value as the text of its input."""
    if field.kind == "checkbox":
        return "on" if value else ""
    if field.kind == "secret":
        return ""  # write-only: never sent back to the browser
    if field.kind in {"json", "json_list"}:
        return json.dumps(value, indent=2) if value else ""
    if field.kind == "kv":
        items = value.items() if isinstance(value, dict) else ()
        return "\n".join(f"{k}: {_templated_text(v)}" for k, v in items)
    if field.kind in {"list", "ints"}:
        return field.sep.join(str(v) for v in value) if isinstance(value, list) else _templated_text(value)
    return _templated_text(value)


def spec_to_form(spec: Integration | None) -> Values:
    """The form values of a spec (defaults filled in), or of a new OAuth 2.0 integration."""
    current = spec or Integration(key="new", name="new", auth=_AUTH_DEFAULTS[_FIRST])
    data = current.model_dump(mode="json", by_alias=True)
    auths = {name: model.model_dump(mode="json", by_alias=True) for name, model in _AUTH_DEFAULTS.items()}
    auths[current.auth.type] = data["auth"]
    values: Values = {}
    for section in SECTIONS:
        for field in section.fields:
            if field.path.startswith("auth.") and field.path != "auth.type":
                sub = field.path.removeprefix("auth.")
                source = section.source or current.auth.type
                block = sub.split(".")[0]
                if block not in auths[source]:
                    # a shared block (token response, hooks) the current type lacks: the first type's defaults
                    source = next((name for name, auth in auths.items() if block in auth), source)
                value = _get(auths[source], sub)
            else:
                value = _get(data, field.path)
            values[field.name] = _show(field, value)
    if spec is None:
        values["key"] = values["name"] = ""
    if current.test is None:
        values["test.path"] = ""
    rows = data.get("parameters", [])
    for index, param in enumerate(rows):
        for field in PARAMETER_FIELDS:
            values[f"parameters.{index}.{field.path}"] = _show(field, param.get(field.path))
    values["parameters.count"] = str(len(rows) or 0)
    return values


@functools.cache
def _defaults(auth_type: str) -> Values:
    """A new integration's form values when its auth type is ``auth_type`` (the first type's when unknown)."""
    auth = _AUTH_DEFAULTS.get(auth_type) or _AUTH_DEFAULTS[_FIRST]
    return spec_to_form(Integration(key="new", name="new", auth=auth))


def open_sections(values: Values, errors: Collection[str]) -> frozenset[str]:
    """The advanced sections to show open: those with a field that has an error or differs from its default.

    The defaults are those of a new integration of the form's auth type, so a section whose fields all
    keep their defaults stays collapsed.
    """
    defaults = _defaults(values.get("auth.type", ""))
    return frozenset(
        section.id
        for section in SECTIONS
        if section.id in ADVANCED
        and any(f.name in errors or values.get(f.name, "") != defaults.get(f.name, "") for f in section.fields)
    )


def _drop(data: dict[str, typing.Any], path: str) -> None:
    *parents, last = path.split(".")
    for part in parents:
        data = data.get(part, {})
    data.pop(last, None)


def stored_secrets(spec: Integration | None) -> frozenset[str]:
    """The secret fields a stored spec has (spec paths): an empty input keeps them."""
    if spec is None:
        return frozenset()
    data = spec.model_dump(mode="json", by_alias=True)
    paths = (f.path for section in SECTIONS for f in section.fields if f.kind == "secret")
    return frozenset(path for path in paths if _get(data, path) == SECRET_MASK)


def blank_parameter(values: Values) -> Values:
    """The same values with one more (empty) parameter row."""
    count = int(values.get("parameters.count", "0") or 0)
    return {**values, "parameters.count": str(count + 1)}


def _templated(text: str) -> str | list[str]:
    text = text.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            return text
        if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
            return parsed
    return text


def _read(field: Field, raw: str, problems: list[ErrorItem]) -> tuple[bool, object]:
    """``(given, value)`` of one input; empty text inputs are "not given" (the spec's default applies)."""
    text = raw.strip()
    if field.kind == "checkbox":
        return True, bool(raw)
    if field.kind == "select":
        return bool(text), text
    if field.kind == "kv":
        mapping: dict[str, object] = {}
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                problems.append(ErrorItem(field.path, f"line {number}: write one 'name: value' per line"))
                continue
            mapping[name.strip()] = _templated(value)
        return True, mapping
    if field.kind in {"list", "ints"}:
        parts = [p.strip() for p in text.replace(",", " ").split()] if field.sep == " " else text.split(",")
        items: list[object] = [p.strip() for p in parts if p.strip()]
        if field.kind == "ints":
            items = [int(p) if isinstance(p, str) and p.isdigit() else p for p in items]
        return True, items
    if field.kind in {"json", "json_list"}:
        if not text:
            return False, None
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(ErrorItem(field.path, f"is not valid JSON ({exc.msg} at line {exc.lineno})"))
            return False, None
        if field.kind == "json_list":
            if isinstance(parsed, list):
                return True, parsed
            problems.append(ErrorItem(field.path, "must be a JSON list: [{...}, ...]"))
            return False, None
        if not isinstance(parsed, dict):
            problems.append(ErrorItem(field.path, 'must be a JSON object: {"name": value, ...}'))
            return False, None
        return True, parsed
    if field.kind in {"url", "text"} and field.templated:
        return bool(text), _templated(text)
    return bool(text), text


def form_to_data(
    form: Values, *, keep_secret: bool | Collection[str]
) -> tuple[dict[str, typing.Any], list[ErrorItem], list[int]]:
    """Spec data from a submitted form, the problems found reading it, and each parameter's form row.

    ``keep_secret``: the secret fields (spec paths, or True for all) stored already; an empty one
    means "keep the stored one" (sent as the ``********`` mask). A field that ``requires`` another
    field's value is left out when that field has another one.
    """
    auth_type = form.get("auth.type", "none")
    data: dict[str, typing.Any] = {}
    problems: list[ErrorItem] = []
    for section in SECTIONS:
        if section.source and section.source != auth_type:
            continue
        if section.auth and auth_type not in section.auth:
            continue
        for field in section.fields:
            if field.kind == "secret":
                if form.get(field.name, ""):
                    _set(data, field.path, form[field.name])
                elif keep_secret is True or (keep_secret and field.path in keep_secret):
                    _set(data, field.path, SECRET_MASK)
                continue
            given, value = _read(field, form.get(field.name, ""), problems)
            if given:
                _set(data, field.path, value)
        for field in section.fields:
            if field.requires is not None and _get(data, field.requires[0]) != field.requires[1]:
                _drop(data, field.path)
    _optional_blocks(data, form, auth_type)
    rows: list[int] = []
    params: list[dict[str, object]] = []
    for row in range(int(form.get("parameters.count", "0") or 0)):
        if form.get(f"parameters.{row}.remove"):
            continue
        param: dict[str, object] = {}
        for field in PARAMETER_FIELDS:
            given, value = _read(field, form.get(f"parameters.{row}.{field.name}", ""), problems)
            if given and value not in (False, [], ""):
                param[field.path] = value
        if param:
            params.append(param)
            rows.append(row)
    if params:
        data["parameters"] = params
    return data, problems, rows


def _optional_blocks(data: dict[str, typing.Any], form: Values, auth_type: str) -> None:
    """Blocks present only when their main field is filled: test, refresh.request, expiry paths."""
    if not form.get("test.path", "").strip():
        data.pop("test", None)
    elif data.get("test", {}).get("expect_status") == []:
        data["test"].pop("expect_status")
    refresh = data.get("refresh", {})
    filled = ("refresh.request.url", "refresh.request.headers", "refresh.request.params")
    if isinstance(refresh, dict) and not any(form.get(name, "").strip() for name in filled):
        refresh.pop("request", None)  # without a url, it goes to the token endpoint: kept when it says anything
    response = _get(data, "auth.token_response")
    if isinstance(response, dict):
        if not form.get("auth.token_response.expires_in.path", "").strip():
            response["expires_in"] = None
        if not form.get("auth.token_response.expires_at.path", "").strip():
            response.pop("expires_at", None)
    plugin = PLUGINS.get(auth_type)
    if (plugin is None or not plugin.has_hooks()) and isinstance(data.get("auth"), dict):
        data["auth"].pop("hooks", None)


def field_errors(errors: typing.Sequence[ErrorItem], *, auth_type: str, rows: list[int]) -> dict[str, list[str]]:
    """Error messages by form field name; those that fit no field are under ``""`` (shown at the top)."""
    by_path: dict[str, str] = {}
    for section in SECTIONS:
        if not section.source or section.source == auth_type:
            for field in section.fields:
                by_path.setdefault(field.path, field.name)
    out: dict[str, list[str]] = {}
    for item in errors:
        parts = item.path.split(".")
        name = ""
        if parts[0] == "parameters" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(rows):
            attr = parts[2] if len(parts) > 2 else "name"
            name = f"parameters.{rows[int(parts[1])]}.{attr}"
        elif parts[0] == "parameters":
            name = "parameters"
        else:
            path = item.path
            while path and path not in by_path:
                path = path.rpartition(".")[0]
            name = by_path.get(path, "")
        message = f"line {item.line}: {item.message}" if item.line else item.message
        out.setdefault(name, []).append(message if name else str(ErrorItem(item.path, message)))
    return out
