"""How an auth type's block of the spec is shown in the console's integration form: plain data, no web code.

Each plugin lists its own fields (``AuthPlugin.form_fields``) and the shared sections it uses
(``AuthPlugin.form_sections``); the console builds its form from them.
"""

from __future__ import annotations

import typing

__all__ = [
    "ALGORITHMS",
    "BODIES",
    "KV_HELP",
    "METHODS",
    "TEMPLATE_HELP",
    "Field",
    "Kind",
    "jwt_fields",
    "token_request_fields",
]

Kind = typing.Literal[
    "text", "url", "select", "checkbox", "secret", "kv", "list", "ints", "duration", "textarea", "json", "json_list"
]


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
    #: Only read when the field at this spec path has this value (a secret used by one method).
    requires: tuple[str, str] | None = None


#: Help of a templated field.
TEMPLATE_HELP = "May use {parameters}."
#: Help of a name-value field.
KV_HELP = "One per line, as name: value. Values may use {parameters}."
METHODS = (("POST", "POST"), ("GET", "GET"))
BODIES = (("form", "form (x-www-form-urlencoded)"), ("json", "JSON"), ("query", "query string"))


def token_request_fields(prefix: str) -> tuple[Field, ...]:
    """The fields of a token request (OAuth 2.0 and custom token), named after the type's section."""
    return (
        Field(f"{prefix}.token_url", "auth.token_url", "Access Token Endpoint", "url", TEMPLATE_HELP, templated=True),
        Field(f"{prefix}.token_method", "auth.token_method", "Access Token Verb", "select", options=METHODS),
        Field(f"{prefix}.token_body", "auth.token_body", "Access token request body", "select", options=BODIES),
        Field(f"{prefix}.token_params", "auth.token_params", "Access Token Parameters", "kv", KV_HELP),
        Field(f"{prefix}.token_headers", "auth.token_headers", "Access token request headers", "kv", KV_HELP),
    )


#: The JWS algorithms offered for a JWT AuthBridge signs.
ALGORITHMS = tuple(
    (alg, alg)
    for alg in (
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519",
        "HS256", "HS384", "HS512",
    )
)  # fmt: skip
_JSON_HELP = "A JSON object. Strings may use {parameters} and {now(unix,+5m)}; numbers stay numbers."


def jwt_fields(prefix: str, path: str) -> tuple[Field, ...]:
    """The fields of a JWT AuthBridge signs (``JwtTemplate``) at spec path ``path``, named after the type's section."""
    return (
        Field(f"{prefix}.alg", f"{path}.alg", "Signing algorithm", "select", options=ALGORITHMS),
        Field(
            f"{prefix}.key",
            f"{path}.key",
            "Signing key",
            help="Usually {private_key}: a secret parameter holding a PEM key, a JWK or a JSON key file.",
            templated=True,
        ),
        Field(
            f"{prefix}.key_encoding",
            f"{path}.key_encoding",
            "Shared secret encoding (HS*)",
            "select",
            options=(("text", "text"), ("hex", "hex"), ("base64", "base64"), ("base64url", "base64url")),
        ),
        Field(f"{prefix}.kid", f"{path}.kid", "Key ID (kid)", help=TEMPLATE_HELP, templated=True),
        Field(
            f"{prefix}.claims",
            f"{path}.claims",
            "Claims",
            "json",
            _JSON_HELP + " iat and exp are set from the lifetime.",
        ),
        Field(f"{prefix}.header", f"{path}.header", "Extra header fields", "json", _JSON_HELP),
        Field(f"{prefix}.ttl", f"{path}.ttl", "Lifetime", "duration", "A duration such as 5m or 1h (at most 7d)."),
    )
