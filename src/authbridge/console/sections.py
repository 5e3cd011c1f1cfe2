"""The integration form's fields, grouped as the seeds group them; the template and the converters read this table."""

from __future__ import annotations

import typing

from authbridge.auth import PLUGINS
from authbridge.auth.form import BODIES as _BODIES
from authbridge.auth.form import KV_HELP as _KV
from authbridge.auth.form import METHODS as _METHODS
from authbridge.auth.form import TEMPLATE_HELP as _TEMPLATE
from authbridge.auth.form import Field

__all__ = ["ADVANCED", "AUTH_TYPES", "PARAMETER_FIELDS", "SECTIONS", "Field", "Section"]

#: The sections collapsed by default: shown open only when a field in them has an error or is not its default.
ADVANCED = frozenset({"token_response", "hooks", "refresh"})


class Section(typing.NamedTuple):
    """A group of fields, shown for some auth types (all when empty)."""

    id: str
    title: str
    intro: str
    fields: tuple[Field, ...]
    auth: tuple[str, ...] = ()
    #: The auth type whose section this is (its fields are read only when that type is selected).
    source: str = ""


#: ``(type, label)`` of every auth type, in the registry's order.
AUTH_TYPES = tuple((plugin.type, plugin.label) for plugin in PLUGINS.values())


def _used_by(section: str) -> tuple[str, ...]:
    """The auth types whose form shows a shared section."""
    return tuple(plugin.type for plugin in PLUGINS.values() if section in plugin.form_sections)


_PATHS = "Dotted paths in the answer, separated by commas; the first found wins."
_DURATION = "A duration such as 30m, 90s or 1h."

SECTIONS: tuple[Section, ...] = (
    Section(
        "properties",
        "Properties",
        "",
        (
            Field("key", "key", "Key", help="Unique identifier: letters and digits only."),
            Field("name", "name", "Integration Name", help="Display name."),
            Field("description", "description", "Description", "textarea"),
        ),
    ),
    Section(
        "auth",
        "Authentication",
        "How a token is obtained.",
        (Field("auth.type", "auth.type", "Authentication type", "select", options=AUTH_TYPES),),
    ),
    # Each auth type's own section, as its plugin describes it (fields named after the type).
    *(
        Section(
            plugin.type,
            plugin.form_title,
            plugin.form_intro,
            plugin.form_fields,
            (plugin.type,),
            plugin.type if plugin.form_fields else "",
        )
        for plugin in PLUGINS.values()
        if plugin.form_title
    ),
    Section(
        "token_response",
        "Token response",
        "Where things are in the token endpoint's answer (the defaults follow RFC 6749).",
        (
            Field(
                "auth.token_response.body",
                "auth.token_response.body",
                "Answer format",
                "select",
                options=(("json", "JSON"), ("form", "form-encoded"), ("text", "text: the whole body is the token")),
            ),
            Field(
                "auth.token_response.access_token", "auth.token_response.access_token", "Access token", "list", _PATHS
            ),
            Field(
                "auth.token_response.refresh_token",
                "auth.token_response.refresh_token",
                "Refresh token",
                "list",
                _PATHS,
            ),
            Field("auth.token_response.token_type", "auth.token_response.token_type", "Token type", "list", _PATHS),
            Field(
                "auth.token_response.accept_token_types",
                "auth.token_response.accept_token_types",
                "Accepted token types",
                "list",
                "Separated by commas, any case. An answer of another type is refused; one without a type is accepted.",
            ),
            Field("auth.token_response.scope", "auth.token_response.scope", "Granted scope", "list", _PATHS),
            Field(
                "auth.token_response.expires_in.path",
                "auth.token_response.expires_in.path",
                "Lifetime (expires_in)",
                help="Empty: the answer has no lifetime.",
            ),
            Field(
                "auth.token_response.expires_in.unit",
                "auth.token_response.expires_in.unit",
                "Lifetime unit",
                "select",
                options=(("s", "seconds"), ("ms", "milliseconds")),
            ),
            Field("auth.token_response.expires_at.path", "auth.token_response.expires_at.path", "Expiry (expires_at)"),
            Field(
                "auth.token_response.expires_at.format",
                "auth.token_response.expires_at.format",
                "Expiry format",
                "select",
                options=(("unix", "Unix seconds"), ("unix_ms", "Unix milliseconds"), ("iso8601", "ISO 8601")),
            ),
            Field("auth.token_response.default_ttl", "auth.token_response.default_ttl", "Default lifetime", "duration"),
        ),
        _used_by("token_response"),
    ),
    Section(
        "hooks",
        "Hooks",
        "Python functions, module:function, from modules the server allows (AUTHBRIDGE_HOOK_MODULES).",
        tuple(
            Field(f"auth.hooks.{name}", f"auth.hooks.{name}", name)
            for name in ("get_token_data", "credentials_from_token_response", "refresh_credentials", "test")
        ),
        _used_by("hooks"),
    ),
    Section(
        "token",
        "Auth Token",
        "How the token rides on every request.",
        (
            Field(
                "token.in",
                "token.in",
                "Token Parameter Type",
                "select",
                options=(("header", "Header"), ("query", "URL Parameter")),
            ),
            Field("token.name", "token.name", "Token Parameter Name", help="e.g. Authorization."),
            Field("token.template", "token.template", "Token Parameter Value Template", help="e.g. Bearer {token}."),
        ),
        _used_by("token"),
    ),
    Section(
        "request",
        "Request Parameters",
        "Included with every request made with a connected account.",
        (
            Field("request.base_url", "request.base_url", "Base URL", "url", _TEMPLATE, templated=True),
            Field("request.headers", "request.headers", "Headers", "kv", _KV),
            Field("request.query", "request.query", "Query parameters", "kv", _KV),
        ),
    ),
    Section(
        "refresh",
        "Refresh",
        "Tokens are refreshed when they expire within the window, and once on the statuses below.",
        (
            Field("refresh.window", "refresh.window", "Refresh window", "duration", _DURATION),
            Field("refresh.on_status", "refresh.on_status", "Refresh and retry on", "ints", "HTTP statuses."),
            Field("refresh.min_ttl", "refresh.min_ttl", "Shortest acceptable lifetime", "duration", _DURATION),
            Field(
                "refresh.request.url",
                "refresh.request.url",
                "Refresh endpoint",
                "url",
                "Only when refreshing differs from the token request.",
                templated=True,
            ),
            Field("refresh.request.method", "refresh.request.method", "Refresh verb", "select", options=_METHODS),
            Field("refresh.request.body", "refresh.request.body", "Refresh body", "select", options=_BODIES),
            Field("refresh.request.headers", "refresh.request.headers", "Refresh headers", "kv", _KV),
            Field("refresh.request.params", "refresh.request.params", "Refresh parameters", "kv", _KV),
        ),
        _used_by("refresh"),
    ),
    Section(
        "test",
        "Test request",
        "What the Test button of an account sends. Leave the path empty for none.",
        (
            Field(
                "test.method",
                "test.method",
                "Method",
                "select",
                options=tuple((m, m) for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")),
            ),
            Field("test.path", "test.path", "Path", help="Relative to the base URL, e.g. /me. May use {token}."),
            Field("test.headers", "test.headers", "Headers", "kv", "One per line, as name: value. May use {token}."),
            Field("test.expect_status", "test.expect_status", "Expected status", "ints", "e.g. 200."),
        ),
    ),
)

#: The inputs of one integration parameter row (``parameters.<row>.<name>``).
PARAMETER_FIELDS: tuple[Field, ...] = (
    Field("name", "name", "Name", help="Referenced as {name}."),
    Field("label", "label", "Label"),
    Field("description", "description", "Description"),
    Field("required", "required", "Required", "checkbox"),
    Field("secret", "secret", "Secret (stored encrypted, never shown)", "checkbox"),
    Field("hidden", "hidden", "Hidden from the connect form", "checkbox"),
    Field("default", "default", "Default"),
    Field("example", "example", "Example"),
    Field("pattern", "pattern", "Pattern", help="A regular expression."),
    Field("enum", "enum", "Allowed values", "list", "Separated by commas."),
    Field(
        "hosts",
        "hosts",
        "Allowed hosts",
        "list",
        "Host names the value may name (api.acme.example, or *.acme.example for any below it), separated by commas.",
    ),
    Field(
        "format",
        "format",
        "Format",
        "select",
        options=(("", "any"), ("hostname", "host name"), ("url", "URL"), ("uuid", "UUID"), ("email", "email")),
    ),
)
