"""The integration form's fields, grouped as the seeds group them; the template and the converters read this table."""

from __future__ import annotations

import typing

__all__ = ["AUTH_TYPES", "PARAMETER_FIELDS", "SECTIONS", "Field", "Section"]

Kind = typing.Literal["text", "url", "select", "checkbox", "secret", "kv", "list", "ints", "duration", "textarea"]


class Field(typing.NamedTuple):
    """One input: its form name, the spec path it fills, and how it is shown."""

    name: str
    path: str
    label: str
    kind: Kind = "text"
    help: str = ""
    options: tuple[tuple[str, str], ...] = ()
    #: Only for this OAuth 2.0 grant type (the page's script hides it for the others).
    grant: str = ""
    placeholder: str = ""
    sep: str = ", "
    templated: bool = False


class Section(typing.NamedTuple):
    """A group of fields, shown for some auth types (all when empty)."""

    id: str
    title: str
    intro: str
    fields: tuple[Field, ...]
    auth: tuple[str, ...] = ()
    #: The auth type whose section this is (its fields are read only when that type is selected).
    source: str = ""


AUTH_TYPES = (
    ("oauth2", "OAuth 2.0"),
    ("custom_token", "Custom Token"),
    ("api_token", "API Token"),
    ("basic", "Basic (username and password)"),
    ("none", "None"),
)
_CODE = "authorization_code"
_METHODS = (("POST", "POST"), ("GET", "GET"))
_BODIES = (("form", "form (x-www-form-urlencoded)"), ("json", "JSON"), ("query", "query string"))
_KV = "One per line, as name: value. Values may use {parameters}."
_TEMPLATE = "May use {parameters}."


def _token_request(prefix: str) -> tuple[Field, ...]:
    return (
        Field(f"{prefix}.token_url", "auth.token_url", "Access Token Endpoint", "url", _TEMPLATE, templated=True),
        Field(f"{prefix}.token_method", "auth.token_method", "Access Token Verb", "select", options=_METHODS),
        Field(f"{prefix}.token_body", "auth.token_body", "Access token request body", "select", options=_BODIES),
        Field(f"{prefix}.token_params", "auth.token_params", "Access Token Parameters", "kv", _KV),
        Field(f"{prefix}.token_headers", "auth.token_headers", "Access token request headers", "kv", _KV),
    )


_OAUTH2 = (
    Field(
        "oauth2.grant_type",
        "auth.grant_type",
        "Authorization Grant Type",
        "select",
        options=((_CODE, "Authorization Code"), ("client_credentials", "Client Credentials"), ("password", "Password")),
    ),
    Field(
        "oauth2.authorization_url",
        "auth.authorization_url",
        "Authorization Endpoint",
        "url",
        _TEMPLATE,
        grant=_CODE,
        templated=True,
    ),
    *_token_request("oauth2")[:2],
    Field("oauth2.revoke_url", "auth.revoke_url", "Revoke Token Endpoint", "url", "Optional.", templated=True),
    Field("oauth2.scopes", "auth.scopes", "OAuth Scope", "list", "Separated by spaces.", sep=" "),
    Field("oauth2.client_id", "auth.client_id", "Client ID", templated=True),
    Field("oauth2.client_secret", "auth.client_secret", "Client Secret", "secret"),
    Field(
        "oauth2.client_auth",
        "auth.client_auth",
        "Client authentication",
        "select",
        options=(("header", "HTTP Basic header"), ("body", "request body"), ("both", "both")),
    ),
    Field("oauth2.pkce", "auth.pkce", "Use PKCE (S256)", "checkbox", grant=_CODE),
    Field(
        "oauth2.refresh_token",
        "auth.refresh_token",
        "The provider issues refresh tokens",
        "checkbox",
        "Unchecked: re-authorize when the token expires.",
        grant=_CODE,
    ),
    Field("oauth2.authorize_params", "auth.authorize_params", "Authorization parameters", "kv", _KV, grant=_CODE),
    Field(
        "oauth2.issuer",
        "auth.issuer",
        "Issuer",
        "url",
        "Optional: the callback's `iss` must match (RFC 9207).",
        grant=_CODE,
        templated=True,
    ),
    Field(
        "oauth2.callback.capture",
        "auth.callback.capture",
        "Callback fields to keep",
        "list",
        "Query parameters of the redirect kept as credential fields, e.g. realmId.",
        grant=_CODE,
    ),
    Field(
        "oauth2.callback.patterns",
        "auth.callback.patterns",
        "Patterns of kept fields",
        "kv",
        "One per line, as field: regular expression. Required for a kept field used in the token URL's host.",
        grant=_CODE,
    ),
    *_token_request("oauth2")[2:],
    Field("oauth2.scope_separator", "auth.scope_separator", "Scope separator", help="Usually a space."),
)

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
    Section("oauth2", "OAuth2 Configuration", "", _OAUTH2, ("oauth2",), "oauth2"),
    Section(
        "custom_token",
        "Custom Token",
        "A token fetched from your own endpoint with the parameters below.",
        (
            *_token_request("custom_token"),
            Field("custom_token.ttl", "auth.ttl", "Token lifetime", "duration", "When the answer gives none."),
        ),
        ("custom_token",),
        "custom_token",
    ),
    Section("api_token", "API Token", "The token is entered when an account is connected.", (), ("api_token",)),
    Section("basic", "Basic", "The username and password are entered when an account is connected.", (), ("basic",)),
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
        ("oauth2", "custom_token"),
    ),
    Section(
        "hooks",
        "Hooks",
        "Python functions, module:function, from modules the server allows (AUTHBRIDGE_HOOK_MODULES).",
        tuple(
            Field(f"auth.hooks.{name}", f"auth.hooks.{name}", name)
            for name in ("get_token_data", "credentials_from_token_response", "refresh_credentials", "test")
        ),
        ("oauth2", "custom_token", "api_token", "basic"),
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
        ("oauth2", "custom_token", "api_token", "basic"),
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
        ("oauth2", "custom_token"),
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
