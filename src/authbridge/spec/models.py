"""The integration spec as pydantic models: one class per block of DESIGN.md's example."""

from __future__ import annotations

import functools
import re
import typing
from datetime import timedelta

import re2
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from authbridge.spec.durations import format_duration, parse_duration
from authbridge.spec.provider import Pagination, RateLimit

__all__ = [
    "CREDENTIAL_NAMES",
    "RESERVED_NAMES",
    "SECRET_MASK",
    "ApiTokenAuth",
    "AuthSpec",
    "BasicAuth",
    "CallbackSpec",
    "CustomTokenAuth",
    "Duration",
    "ExpiresAt",
    "ExpiresIn",
    "Hooks",
    "Integration",
    "NoneAuth",
    "OAuth2Auth",
    "Parameter",
    "ParamValue",
    "PathList",
    "RefreshPolicy",
    "RefreshRequest",
    "RequestSpec",
    "Templated",
    "TestRequest",
    "Text",
    "TokenMethod",
    "TokenPlacement",
    "TokenResponse",
    "compile_pattern",
]

#: What an API response shows in place of a stored secret.
SECRET_MASK = "********"  # noqa: S105 - a mask, not a password

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOOK = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
_TCHAR = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_KEY = re.compile(r"[A-Za-z0-9]{1,64}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: An entry of a parameter's ``hosts``: a host name of at least two labels, or ``*.`` and one.
_HOST_ENTRY = re.compile(rf"(?:\*\.)?(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})+")
#: The template builtins. A parameter may be called ``username`` or ``password`` (it then is what those
#: names mean) except where the user enters them as credentials (``basic``, the password grant).
RESERVED_NAMES = frozenset(
    {"token", "refresh_token", "client_id", "client_secret", "username", "password", "credentials"}
)
#: Builtins a parameter may still be named after.
CREDENTIAL_NAMES = frozenset({"username", "password"})


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> typing.Any:
    """Compile an integration-defined ``pattern`` with RE2, whose matching time is linear in the value.

    Python's ``re`` backtracks: ``^(a+)+$`` takes exponential time on a value of a's ending in ``!``.
    RE2 has no backtracking, so no pattern lets a value stall the server; it refuses what it cannot
    run in linear time (backreferences, lookarounds) at compile time, and programs over its memory budget.

    Raises:
        ValueError: the pattern is not valid RE2 syntax; the message says why.
    """
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"is not a valid regular expression for RE2 ({reason}); RE2 matches in linear time, "
            "so lookarounds and backreferences are not supported"
        ) from None


def _templated(value: object) -> object:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("a list of alternatives cannot be empty")
        if all(isinstance(v, str) for v in value):
            return list(value)
    raise ValueError("must be a template string or a list of template strings")


def _text(value: object) -> object:
    # YAML reads `443` as a number and `yes` as a boolean: take whole numbers, ask for quotes otherwise.
    if isinstance(value, bool | float):
        raise ValueError("must be text: put it in quotes")
    return str(value) if isinstance(value, int) else value


#: A parameter value written in the spec (a default, an example, an enum member).
Text = typing.Annotated[str, BeforeValidator(_text)]
#: A template, or a list of alternative templates (the first whose references are all set wins).
Templated = typing.Annotated[str | list[str], BeforeValidator(_templated)]


def _param_value(value: object) -> object:
    return value if isinstance(value, bool | int | float) else _templated(value)


#: A token request field: a template (or alternatives), or a boolean or number sent as one
#: (a JSON type with ``token_body: json``, ``true``/``false`` or the number's text in a form or query).
ParamValue = typing.Annotated[str | list[str] | bool | int | float, BeforeValidator(_param_value)]
#: A duration: ``30m``, ``90s``, ``1h`` or seconds; written back as ``30m``.
Duration = typing.Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Parameter(_Model):
    """An integration parameter: a value given per connected account, referenced as ``{name}``."""

    name: str
    label: str | None = None
    description: str | None = None
    required: bool = False
    secret: bool = False
    default: Text | None = None
    pattern: str | None = None
    enum: list[Text] | None = None
    format: typing.Literal["hostname", "url", "uuid", "email"] | None = None
    #: The hosts a value may name (the value itself, or the host of a ``format: url`` value):
    #: ``api.acme.example`` exactly, ``*.acme.example`` any name under acme.example.
    hosts: list[str] | None = None
    example: Text | None = None
    hidden: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _IDENT.fullmatch(value):
            raise ValueError("must be letters, digits and '_', not starting with a digit (it is used as {name})")
        if value in RESERVED_NAMES - CREDENTIAL_NAMES:
            raise ValueError(f"'{value}' is a built-in template name; choose another parameter name")
        return value

    @model_validator(mode="before")
    @classmethod
    def _password_is_secret(cls, data: object) -> object:
        # A parameter called `password` holds one: it is stored encrypted and never shown, like any secret.
        if isinstance(data, dict) and data.get("name") == "password":
            if data.get("secret", True) is False:
                raise ValueError("a parameter named password is always secret: leave out `secret: false`")
            return {**data, "secret": True}
        return data

    @field_validator("pattern")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            compile_pattern(value)
        return value

    @field_validator("enum")
    @classmethod
    def _enum_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("must list at least one value")
        return value

    @field_validator("hosts")
    @classmethod
    def _host_patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must list at least one host")
        for host in value:
            if not _HOST_ENTRY.fullmatch(host):
                raise ValueError(
                    f"{host!r} is not a host name or *.domain (letters, digits, '-', '.', at least two labels)"
                )
        return [host.lower() for host in value]

    @field_validator("default")
    @classmethod
    def _secret_has_no_default(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("secret"):
            raise ValueError("a secret parameter cannot have a default: it would be stored in the spec in clear")
        return value


class ExpiresIn(_Model):
    """Where the token's lifetime is, and in which unit."""

    path: str = "expires_in"
    unit: typing.Literal["s", "ms"] = "s"


class ExpiresAt(_Model):
    """Where the token's expiry instant is, and how it is written."""

    path: str = "expires_at"
    format: typing.Literal["unix", "unix_ms", "iso8601"] = "unix"


def _path_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


PathList = typing.Annotated[list[str], BeforeValidator(_path_list)]


class TokenResponse(_Model):
    """Where things are in the token endpoint's answer. Paths are dotted; the first found wins."""

    body: typing.Literal["json", "form", "text"] = "json"
    access_token: PathList = Field(default_factory=lambda: ["access_token"], min_length=1)
    refresh_token: PathList = Field(default_factory=lambda: ["refresh_token"])
    token_type: PathList = Field(default_factory=lambda: ["token_type"])
    scope: PathList = Field(default_factory=lambda: ["scope"])
    expires_in: ExpiresIn | None = Field(default_factory=ExpiresIn)
    expires_at: ExpiresAt | None = None
    default_ttl: Duration | None = None
    #: The ``token_type`` values accepted (compared case-insensitively); an answer without one is accepted.
    #: RFC 6749 §7.1: a client must not use a token whose type it does not understand.
    accept_token_types: list[typing.Annotated[str, Field(min_length=1, pattern=r"^[!-~]+$")]] = Field(
        default_factory=lambda: ["bearer"], min_length=1
    )

    @field_validator("expires_in", mode="before")
    @classmethod
    def _expires_in_shorthand(cls, value: object) -> object:
        return {"path": value} if isinstance(value, str) else value

    @field_validator("expires_at", mode="before")
    @classmethod
    def _expires_at_shorthand(cls, value: object) -> object:
        return {"path": value} if isinstance(value, str) else value


class CallbackSpec(_Model):
    """What to keep from the OAuth redirect: query parameters become credential fields.

    ``patterns`` constrains captured fields (RE2, whole value): a redirect whose value does not
    match fails. A captured field used in the host of ``token_url`` must have one.
    """

    capture: list[str] = Field(default_factory=list)
    patterns: dict[str, str] = Field(default_factory=dict)

    @field_validator("patterns")
    @classmethod
    def _valid_patterns(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        for name, pattern in value.items():
            if name not in info.data.get("capture", []):
                raise ValueError(f"'{name}' is not a captured field (list it in capture)")
            try:
                compile_pattern(pattern)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return value


class Hooks(_Model):
    """Python hooks, ``module:function``, loaded only from modules the server allows."""

    get_token_data: str | None = None
    credentials_from_token_response: str | None = None
    refresh_credentials: str | None = None
    test: str | None = None

    @field_validator("*")
    @classmethod
    def _hook_syntax(cls, value: str | None) -> str | None:
        if value is not None and not _HOOK.fullmatch(value):
            raise ValueError("must be written module.path:function")
        return value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


#: An HTTP method of a token or refresh request; ``get`` and ``post`` are accepted and written upper case.
TokenMethod = typing.Annotated[typing.Literal["GET", "POST"], BeforeValidator(_upper)]


class _TokenRequest(_Model):
    """The fields of a token request, shared by OAuth 2.0 and custom token."""

    token_url: Templated | None = None
    token_method: TokenMethod = "POST"  # noqa: S105
    token_body: typing.Literal["form", "json", "query"] = "form"  # noqa: S105
    token_headers: dict[str, Templated] = Field(default_factory=dict)
    token_params: dict[str, ParamValue] = Field(default_factory=dict)
    token_response: TokenResponse = Field(default_factory=TokenResponse)
    hooks: Hooks = Field(default_factory=Hooks)


class OAuth2Auth(_TokenRequest):
    """OAuth 2.0: authorization code, client credentials or password grant."""

    type: typing.Literal["oauth2"] = "oauth2"
    grant_type: typing.Literal["authorization_code", "client_credentials", "password"] = "authorization_code"
    authorization_url: Templated | None = None
    issuer: Templated | None = None
    authorize_params: dict[str, Templated] = Field(default_factory=dict)
    revoke_url: Templated | None = None
    scopes: list[str] = Field(default_factory=list)
    scope_separator: str = " "
    client_id: Templated | None = None
    client_secret: SecretStr | None = None
    #: How the client authenticates at the token and revocation endpoints: HTTP Basic header, body fields,
    #: both, or an RFC 7523 client assertion signed with the client secret (``client_secret_jwt``).
    client_auth: typing.Literal["header", "body", "both", "client_secret_jwt"] = "header"
    pkce: bool = True
    refresh_token: bool = True
    callback: CallbackSpec = Field(default_factory=CallbackSpec)

    @field_validator("scopes", mode="before")
    @classmethod
    def _scope_string(cls, value: object) -> object:
        return value.split() if isinstance(value, str) else value

    @field_serializer("client_secret", when_used="always")
    def _mask_secret(self, value: SecretStr | None) -> str | None:
        return SECRET_MASK if value is not None else None


class CustomTokenAuth(_TokenRequest):
    """A token fetched from a custom endpoint (Airkit "Custom Token")."""

    type: typing.Literal["custom_token"] = "custom_token"
    ttl: Duration | None = None


class ApiTokenAuth(_Model):
    """A static API token entered when the connection is created."""

    type: typing.Literal["api_token"] = "api_token"
    hooks: Hooks = Field(default_factory=Hooks)


class BasicAuth(_Model):
    """HTTP Basic: a username and password entered when the connection is created."""

    type: typing.Literal["basic"] = "basic"
    hooks: Hooks = Field(default_factory=Hooks)


class NoneAuth(_Model):
    """No credentials: only the base URL, headers and query of ``request``."""

    type: typing.Literal["none"] = "none"


AuthSpec = typing.Annotated[
    OAuth2Auth | CustomTokenAuth | ApiTokenAuth | BasicAuth | NoneAuth, Field(discriminator="type")
]


class TokenPlacement(_Model):
    """How the token rides on every request (Airkit "Auth Token")."""

    in_: typing.Literal["header", "query"] = Field(default="header", alias="in")
    name: str = "Authorization"
    template: str = "Bearer {token}"

    @field_validator("name")
    @classmethod
    def _header_name(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("in_", "header") == "header" and not _TCHAR.fullmatch(value):
            raise ValueError("is not a valid HTTP header name")
        if not value:
            raise ValueError("cannot be empty")
        return value


class RequestSpec(_Model):
    """The base URL and the parameters added to every request (Airkit "Request Parameters")."""

    base_url: Templated | None = None
    headers: dict[str, Templated] = Field(default_factory=dict)
    query: dict[str, Templated] = Field(default_factory=dict)


class RefreshRequest(_Model):
    """A refresh request that differs from the token request; ``url`` defaults to ``auth.token_url``."""

    url: Templated | None = None
    method: TokenMethod = "POST"
    body: typing.Literal["form", "json", "query"] = "form"
    headers: dict[str, Templated] = Field(default_factory=dict)
    params: dict[str, ParamValue] = Field(default_factory=dict)


class RefreshPolicy(_Model):
    """When to refresh: inside ``window`` of expiry, and on the upstream answers in ``on_status``."""

    window: Duration = timedelta(minutes=30)
    on_status: list[typing.Annotated[int, Field(ge=400, le=599)]] = Field(default_factory=lambda: [401, 403])
    min_ttl: Duration = timedelta(minutes=5)
    request: RefreshRequest | None = None


class TestRequest(_Model):
    """The request ``POST /connections/{id}/test`` sends, and the status it expects."""

    __test__ = False  # not a pytest class

    method: typing.Annotated[
        typing.Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], BeforeValidator(_upper)
    ] = "GET"
    path: str = "/"
    headers: dict[str, Templated] = Field(default_factory=dict)
    expect_status: list[typing.Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200], min_length=1
    )

    @field_validator("expect_status", mode="before")
    @classmethod
    def _status_list(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value


class Integration(_Model):
    """A declared API and how to authenticate to it.

    ```
    integration = load_spec(open("examples/acme.yaml").read())
    integration.auth.type        # "oauth2"
    dump_spec(integration)       # YAML again, secrets masked
    ```
    """

    key: str
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    parameters: list[Parameter] = Field(default_factory=list)
    auth: AuthSpec = Field(default_factory=NoneAuth)
    token: TokenPlacement = Field(default_factory=TokenPlacement)
    request: RequestSpec = Field(default_factory=RequestSpec)
    refresh: RefreshPolicy = Field(default_factory=RefreshPolicy)
    #: How the provider limits: waits and retries of the proxy and the Bridge, concurrency, pacing.
    rate_limit: RateLimit | None = None
    #: How the provider's list endpoints page (``paginate`` in the SDK and the Bridge).
    pagination: Pagination | None = None
    test: TestRequest | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _KEY.fullmatch(value):
            raise ValueError("must contain only letters and digits (1 to 64 of them)")
        return value

    @field_validator("parameters")
    @classmethod
    def _unique_parameters(cls, value: list[Parameter]) -> list[Parameter]:
        seen: set[str] = set()
        for p in value:
            if p.name in seen:
                raise ValueError(f"parameter '{p.name}' is declared twice")
            seen.add(p.name)
        return value

    def parameter(self, name: str) -> Parameter | None:
        """The declared parameter called ``name``, if any."""
        return next((p for p in self.parameters if p.name == name), None)

    @property
    def client_secret(self) -> str | None:
        """The OAuth client secret in clear (only the broker should need this)."""
        if isinstance(self.auth, OAuth2Auth) and self.auth.client_secret is not None:
            return self.auth.client_secret.get_secret_value()
        return None
