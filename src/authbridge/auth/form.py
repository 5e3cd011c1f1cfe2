"""How an auth type's block of the spec is shown in the console's integration form: plain data, no web code.

Each plugin lists its own fields (``AuthPlugin.form_fields``) and the shared sections it uses
(``AuthPlugin.form_sections``); the console builds its form from them.
"""

from __future__ import annotations

import typing

__all__ = ["BODIES", "KV_HELP", "METHODS", "TEMPLATE_HELP", "Field", "Kind", "token_request_fields"]

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
