"""The integration spec as pydantic models: one class per block of DESIGN.md's example."""

from __future__ import annotations

import functools
import math
import re
import typing
from datetime import timedelta

import re2
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    SecretStr,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from authbridge.errors import TemplateError
from authbridge.spec.durations import format_duration, parse_duration
from authbridge.spec.provider import Pagination, RateLimit
from authbridge.spec.templating import Template

__all__ = [
    "CREDENTIAL_NAMES",
    "HMAC_NAMES",
    "RAW_SAFE_CHARS",
    "SCOPE_PARAMETER",
    "RESERVED_NAMES",
    "SECRET_MASK",
    "ApiTokenAuth",
    "AssertionAlgorithm",
    "AuthSpec",
    "AwsSigV4Auth",
    "BasicAuth",
    "CallbackSpec",
    "ClaimValue",
    "CustomTokenAuth",
    "Duration",
    "ExpiresAt",
    "ExpiresIn",
    "HmacSignatureAuth",
    "Hooks",
    "Integration",
    "JwtAlgorithm",
    "JwtAuth",
    "JwtBearerAuth",
    "JwtTemplate",
    "MAX_JWT_TTL",
    "MAX_KEY_LENGTH",
    "NoneAuth",
    "OAuth1Auth",
    "OAuth2Auth",
    "Parameter",
    "ParamValue",
    "StepCapture",
    "TokenStep",
    "PathList",
    "RefreshPolicy",
    "RefreshRequest",
    "RequestSpec",
    "SignaturePlacement",
    "Templated",
    "TestRequest",
    "Text",
    "TokenMethod",
    "TokenPlacement",
    "TokenResponse",
    "compile_pattern",
]

#: What a value sent unencoded in the authorization URL (``authorize_raw``) may hold: RFC 3986 unreserved
#: characters and the sub-delimiters and ``:@/`` that do not end a query value (no ``&``, ``=``, ``#``, ``%``, ``?``).
RAW_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$'()*+,;:@/")
#: A scope entry that takes a parameter's value (split on spaces): ``{scopes}``.
SCOPE_PARAMETER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_QUERY_NAME = re.compile(r"[A-Za-z0-9_.~\[\]-]{1,64}")
#: Authorization URL parameters only AuthBridge sets.
_AUTHORIZE_OWN = frozenset({"response_type", "redirect_uri", "state", "code_challenge", "code_challenge_method"})
_PLACEHOLDER = re.compile(r"(?<!\{)\{[^{}]*\}(?!\})")

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
#: What an HMAC signature's templates may use besides parameters (each request's own values; docs/spec.md).
HMAC_NAMES = frozenset(
    {
        "method",
        "path",
        "query",
        "raw_query",
        "target",
        "host",
        "body",
        "body_digest",
        "timestamp",
        "nonce",
        "headers",
        "header_names",
        "key_id",
    }
)
#: Those an HMAC's ``headers`` and ``query`` may use (they are set before the rest is known).
HMAC_EARLY_NAMES = frozenset({"method", "path", "host", "body_digest", "timestamp", "nonce", "key_id"})


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


#: The JWS algorithms AuthBridge signs with (RFC 7518, RFC 8037): RSA, RSA-PSS, ECDSA, HMAC and Ed25519/Ed448.
JwtAlgorithm = typing.Literal[
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "HS256",
    "HS384",
    "HS512",
    "EdDSA",
    "Ed25519",
]
#: The algorithms of ``private_key_jwt`` client assertions (asymmetric: the provider holds only the public key).
AssertionAlgorithm = typing.Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"
]
#: Header fields AuthBridge writes itself (``alg`` from ``alg``, ``kid`` from ``kid``).
_OWN_HEADER_FIELDS = frozenset({"alg", "kid"})
_MAX_CLAIM_DEPTH = 8


def _check_claim(value: JsonValue, depth: int = 0) -> None:
    if depth > _MAX_CLAIM_DEPTH:
        raise ValueError(f"nests deeper than {_MAX_CLAIM_DEPTH} levels")
    if isinstance(value, str):
        try:
            Template.parse(value)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    elif isinstance(value, list):
        for item in value:
            _check_claim(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _check_claim(item, depth + 1)


def _claim(value: JsonValue) -> JsonValue:
    _check_claim(value)
    return value


#: A JWT header field or claim: any JSON value; its strings are templates (``"{issuer_id}"``, ``"{now(unix,+5m)}"``).
#: Numbers, booleans, lists and objects stay as written; a string that is exactly one ``{now(unix…)}`` is a number.
ClaimValue = typing.Annotated[JsonValue, AfterValidator(_claim)]


class JwtTemplate(_Model):
    """A JWT that AuthBridge signs: its algorithm, key, header and claims (templates), and lifetime.

    ``key`` renders to the signing key: a PEM private key (RSA, EC, Ed25519), a JWK (JSON), a
    service-account key file (JSON with ``private_key``, as Google issues), or for ``HS*`` the
    shared secret as text (``key_encoding`` says when it is hex or base64). ``iat`` and ``exp``
    are set from the signing time and ``ttl`` unless ``claims`` gives them.

    ```yaml
    alg: ES256
    key: "{private_key}"
    kid: "{key_id}"
    claims: {iss: "{issuer_id}", aud: appstoreconnect-v1}
    ttl: 20m
    ```
    """

    alg: JwtAlgorithm = "RS256"
    key: Templated = "{private_key}"
    key_encoding: typing.Literal["text", "hex", "base64", "base64url"] = "text"
    kid: Templated | None = None
    header: dict[str, ClaimValue] = Field(default_factory=dict)
    claims: dict[str, ClaimValue] = Field(default_factory=dict)
    ttl: Duration = timedelta(minutes=5)

    @field_validator("header")
    @classmethod
    def _own_header_fields(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        for name in sorted(_OWN_HEADER_FIELDS & value.keys()):
            raise ValueError(f"{name} is set by the `{name}` field, not in header")
        return value

    @field_validator("ttl")
    @classmethod
    def _ttl_range(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= MAX_JWT_TTL:
            raise ValueError(f"must be between 1s and {format_duration(MAX_JWT_TTL)}")
        return value

    @model_validator(mode="after")
    def _encoding_for_hmac(self) -> JwtTemplate:
        if self.key_encoding != "text" and not self.alg.startswith("HS"):
            raise ValueError(f"key_encoding {self.key_encoding} is only for HS256/HS384/HS512 shared secrets")
        return self


#: The longest signing key read (an 8192-bit RSA PEM is about 6,400 characters; a key file a little more).
MAX_KEY_LENGTH = 16_384
_PARAM_REF = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
#: The longest ``ttl`` of a JWT AuthBridge signs.
MAX_JWT_TTL = timedelta(days=7)


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
    #: An issuer or metadata URL: the endpoints left out are read from RFC 8414 / OpenID metadata.
    discovery: Templated | None = None
    #: A protected resource (RFC 9728): its metadata names the authorization server, then discovered as above.
    protected_resource: Templated | None = None
    #: RFC 8707 resource indicator: sent on the authorization request and every token request.
    resource: Templated | None = None
    authorization_url: Templated | None = None
    issuer: Templated | None = None
    authorize_params: dict[str, Templated] = Field(default_factory=dict)
    revoke_url: Templated | None = None
    scopes: list[str] = Field(default_factory=list)
    scope_separator: str = " "
    client_id: Templated | None = None
    client_secret: SecretStr | None = None
    #: How the client authenticates at the token and revocation endpoints: HTTP Basic header, body fields,
    #: both, or an RFC 7523 client assertion signed with the client secret (``client_secret_jwt``) or
    #: with ``client_private_key`` (``private_key_jwt``).
    client_auth: typing.Literal["header", "body", "both", "client_secret_jwt", "private_key_jwt"] = "header"
    #: The PEM private key of ``private_key_jwt``: write-only, stored encrypted like ``client_secret``.
    client_private_key: SecretStr | None = None
    #: The ``kid`` of the client assertions' header (the key's id registered with the provider).
    client_key_id: Templated | None = None
    #: The algorithm of the client assertions.
    client_assertion_alg: AssertionAlgorithm = "RS256"
    pkce: bool = True
    refresh_token: bool = True
    #: ``dynamic``: AuthBridge registers its own client (RFC 7591) at the first connection and reuses it.
    #: ``auto``: its client ID metadata document's URL is the client id where the server's metadata says
    #: ``client_id_metadata_document_supported`` (and AuthBridge serves one), else ``dynamic``.
    client_registration: typing.Literal["none", "dynamic", "auto"] = "none"
    #: The registration endpoint (else the metadata's ``registration_endpoint``, with ``discovery``).
    registration_url: Templated | None = None
    #: Client metadata sent with the registration (``client_name``, ``logo_uri``, ``contacts``...).
    registration_metadata: dict[str, typing.Any] = Field(default_factory=dict)
    callback: CallbackSpec = Field(default_factory=CallbackSpec)
    #: The authorization URL's name for the client id (``client_key``, ``app_id``): some providers rename it.
    authorize_client_id_param: str = "client_id"
    #: The authorization URL's name for the scopes (``user_scope``, ``scopes``), joined by ``scope_separator``.
    authorize_scope_param: str = "scope"
    #: Authorization URL parameters sent without percent-encoding (``scope`` as ``a,b``, not ``a%2Cb``). Their
    #: values may hold only characters that cannot end the value: no ``&``, ``=``, ``#``, ``%``, space or ``?``.
    authorize_raw: list[str] = Field(default_factory=list)

    @field_validator("authorize_client_id_param", "authorize_scope_param")
    @classmethod
    def _query_name(cls, value: str) -> str:
        if not _QUERY_NAME.fullmatch(value):
            raise ValueError("must be 1 to 64 letters, digits, '_', '-', '.', '~', '[' or ']' (a query parameter name)")
        if value in _AUTHORIZE_OWN:
            raise ValueError(f"{value} is a parameter AuthBridge sets itself; choose another name")
        return value

    @model_validator(mode="after")
    def _shaping(self) -> OAuth2Auth:
        if self.authorize_client_id_param == self.authorize_scope_param:
            raise ValueError("authorize_client_id_param and authorize_scope_param cannot be the same name")
        sent = {self.authorize_client_id_param, self.authorize_scope_param, "redirect_uri", *self.authorize_params}
        for name in self.authorize_raw:
            if name not in sent:
                raise ValueError(
                    f"authorize_raw: {name} is not a parameter of the authorization URL that the spec shapes "
                    f"({', '.join(sorted(sent))})"
                )
        for name, text in self._raw_literals():
            bad = sorted(set(text) - RAW_SAFE_CHARS)
            if bad:
                raise ValueError(
                    f"authorize_raw: {name} is sent unencoded but holds {''.join(bad)!r}, which would change the "
                    "URL; leave it out of authorize_raw"
                )
        return self

    def _raw_literals(self) -> typing.Iterator[tuple[str, str]]:
        """The spec's own text of each raw parameter (template placeholders left out: checked when rendered)."""
        raw = set(self.authorize_raw)
        if self.authorize_scope_param in raw and self.scopes:
            yield self.authorize_scope_param, self.scope_separator.join(self.scopes)
        sources: dict[str, str | list[str] | None] = {
            self.authorize_client_id_param: self.client_id,
            **self.authorize_params,
        }
        for name, source in sources.items():
            if name in raw and source is not None:
                for item in [source] if isinstance(source, str) else source:
                    yield name, _PLACEHOLDER.sub("", item).replace("{{", "{").replace("}}", "}")

    @field_validator("scopes", mode="before")
    @classmethod
    def _scope_string(cls, value: object) -> object:
        return value.split() if isinstance(value, str) else value

    @field_serializer("client_secret", "client_private_key", when_used="always")
    def _mask_secret(self, value: SecretStr | None) -> str | None:
        return SECRET_MASK if value is not None else None

    @model_validator(mode="after")
    def _private_key_jwt(self) -> OAuth2Auth:
        if self.client_auth == "private_key_jwt" and self.client_private_key is None:
            raise ValueError("client_auth private_key_jwt needs auth.client_private_key (the PEM private key)")
        if self.client_auth != "private_key_jwt" and self.client_private_key is not None:
            raise ValueError("auth.client_private_key is used only with client_auth: private_key_jwt")
        return self


class JwtBearerAuth(_TokenRequest):
    """RFC 7523 §2.1: a JWT signed by AuthBridge (``assertion``) exchanged for an access token; re-signed to refresh.

    Google service accounts (the JSON key file as a secret parameter) and Salesforce's JWT flow.
    """

    type: typing.Literal["jwt_bearer"] = "jwt_bearer"
    assertion: JwtTemplate = Field(default_factory=JwtTemplate)
    scopes: list[str] = Field(default_factory=list)
    scope_separator: str = " "
    #: Send the scopes as the assertion's ``scope`` claim (Google) instead of the request's ``scope`` field.
    scope_claim: bool = False

    @field_validator("scopes", mode="before")
    @classmethod
    def _scope_string(cls, value: object) -> object:
        return value.split() if isinstance(value, str) else value


class JwtAuth(JwtTemplate):
    """A JWT signed by AuthBridge is itself the token (App Store Connect, Ghost admin API, Zoom SDK).

    Signed when the account connects and again inside the refresh window; placed like any token.
    """

    type: typing.Literal["jwt"] = "jwt"


#: The most steps a multi-step token request may have.
MAX_STEPS = 8
#: Fields of ``custom_token`` that ``steps`` replace (each step has its own url, method, body, headers, params).
_STEP_REPLACES = ("token_url", "token_method", "token_body", "token_headers", "token_params")


class StepCapture(_Model):
    """Where one captured value is in a step's answer: exactly one of ``json``, ``header``, ``form``, ``cookie``.

    ```
    capture:
      nonce: data.nonce                    # shorthand for {json: data.nonce}
      session: {cookie: SESSIONID, pattern: "[A-Za-z0-9]{16,128}"}
      request_id: {header: X-Request-Id}
    ```
    """

    json_: str | None = Field(default=None, alias="json", min_length=1)
    header: str | None = Field(default=None, min_length=1)
    form: str | None = Field(default=None, min_length=1)
    cookie: str | None = Field(default=None, min_length=1)
    #: The whole value must match (RE2); a value that does not fails the step.
    pattern: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        return {"json": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _exactly_one(self) -> StepCapture:
        given = [name for name in ("json", "header", "form", "cookie") if self.where_name(name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of json, header, form or cookie (where the value is in the answer)")
        if self.header is not None and not _TCHAR.fullmatch(self.header):
            raise ValueError("header: is not a valid HTTP header name")
        if self.pattern is not None:
            compile_pattern(self.pattern)
        return self

    def where_name(self, source: str) -> str | None:
        return self.json_ if source == "json" else typing.cast("str | None", getattr(self, source))

    @property
    def source(self) -> tuple[str, str]:
        """``(kind, name)``: ``("json", "data.nonce")``, ``("header", "X-Nonce")``..."""
        for kind in ("json", "header", "form", "cookie"):
            name = self.where_name(kind)
            if name is not None:
                return kind, name
        raise AssertionError("validated to have one source")  # pragma: no cover


class TokenStep(_Model):
    """One request of a multi-step token request; its captures are ``{captured.<name>}`` in later steps."""

    name: str
    url: Templated
    method: TokenMethod = "POST"
    body: typing.Literal["form", "json", "query"] = "form"
    headers: dict[str, Templated] = Field(default_factory=dict)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    #: A JWT signed for this step (a GitHub App's app JWT), usable as ``{jwt}`` in its url, headers and params.
    jwt: JwtTemplate | None = None
    #: The statuses that count as success (default: any 2xx). A login may answer 302 with its cookie.
    expect_status: list[typing.Annotated[int, Field(ge=200, le=399)]] | None = None
    capture: dict[str, StepCapture] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _step_name(cls, value: str) -> str:
        if not _IDENT.fullmatch(value):
            raise ValueError("must be letters, digits and '_', not starting with a digit")
        return value

    @field_validator("capture")
    @classmethod
    def _capture_names(cls, value: dict[str, StepCapture]) -> dict[str, StepCapture]:
        for name in value:
            if not _IDENT.fullmatch(name):
                raise ValueError(f"'{name}' must be letters, digits and '_' (it is used as {{captured.{name}}})")
        return value

    @field_validator("expect_status", mode="before")
    @classmethod
    def _status_list(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value


#: The OAuth 1.0a signature methods (RFC 5849 §3.4 and the SHA-256 variants providers such as NetSuite use).
SignatureMethod = typing.Literal["HMAC-SHA1", "HMAC-SHA256", "RSA-SHA1", "RSA-SHA256", "PLAINTEXT"]


class OAuth1Auth(_Model):
    """OAuth 1.0a (RFC 5849): three-legged (request token, authorize, access token) or a token entered by the user.

    ``client_id`` and ``client_secret`` are the consumer key and secret (RFC 5849's client credentials);
    with an ``RSA-*`` method ``client_secret`` holds the PEM private key instead. Both ways it is stored
    encrypted and never shown, like OAuth 2.0's client secret. Every API request is signed.
    """

    type: typing.Literal["oauth1"] = "oauth1"
    #: ``three_legged``: the browser authorizes a request token; ``token``: the user enters a token id and secret.
    flow: typing.Literal["three_legged", "token"] = "three_legged"
    request_token_url: Templated | None = None
    authorization_url: Templated | None = None
    access_token_url: Templated | None = None
    #: Extra query parameters of the authorization URL (Trello's ``name``, ``scope``, ``expiration``).
    authorize_params: dict[str, Templated] = Field(default_factory=dict)
    client_id: Templated | None = None
    client_secret: SecretStr | None = None
    signature_method: SignatureMethod = "HMAC-SHA1"
    #: Where the ``oauth_*`` parameters and the signature go: the Authorization header or the query.
    signature_location: typing.Literal["header", "query"] = "header"
    #: The ``realm`` of the Authorization header (NetSuite: the account id), a template.
    realm: Templated | None = None

    @field_serializer("client_secret", when_used="always")
    def _mask_secret(self, value: SecretStr | None) -> str | None:
        return SECRET_MASK if value is not None else None

    @model_validator(mode="after")
    def _plaintext_in_header(self) -> OAuth1Auth:
        if self.signature_method == "PLAINTEXT" and self.signature_location == "query":
            raise ValueError(
                "PLAINTEXT sends the secrets themselves: put it in the Authorization header, not the query"
            )
        return self


class CustomTokenAuth(_TokenRequest):
    """A token fetched from a custom endpoint (Airkit "Custom Token"), in one request or in ``steps``."""

    type: typing.Literal["custom_token"] = "custom_token"
    ttl: Duration | None = None
    #: Requests sent in order; each may capture values of its answer for the next; the last answer is the
    #: token response (read per ``token_response``, which may also name ``captured.<name>``).
    steps: list[TokenStep] = Field(default_factory=list, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _steps_replace_the_token_request(self) -> CustomTokenAuth:
        if not self.steps:
            return self
        # Compared with the defaults, not model_fields_set: a dump of a valid spec writes every field back.
        clash = [
            name
            for name in _STEP_REPLACES
            if getattr(self, name) != CustomTokenAuth.model_fields[name].get_default(call_default_factory=True)
        ]
        if clash:
            raise ValueError(
                f"{', '.join(clash)}: a custom token with steps sends each step's own url, method, body, "
                "headers and params; move these into the steps"
            )
        names: set[str] = set()
        captured: set[str] = set()
        for step in self.steps:
            if step.name in names:
                raise ValueError(f"steps: two steps are named {step.name}")
            names.add(step.name)
            for name in step.capture:
                if name in captured:
                    raise ValueError(f"steps.{step.name}.capture: {name} is captured by an earlier step too")
                captured.add(name)
        return self

    @property
    def captured_names(self) -> frozenset[str]:
        """Every value the steps capture."""
        return frozenset(name for step in self.steps for name in step.capture)


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


#: A header name (RFC 9110 token), written lower case where it is compared.
_HeaderName = typing.Annotated[str, Field(pattern=r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")]


class AwsSigV4Auth(_Model):
    """AWS Signature Version 4: every request signed with the connection's access key.

    The access key id, secret access key and (optional) session token are entered when an account
    connects, unless a parameter of the same name supplies them (``secret: true`` for the secret ones).
    """

    type: typing.Literal["aws_sigv4"] = "aws_sigv4"
    #: The region of the credential scope (required) (``us-east-1``); may use {parameters}.
    region: Templated | None = None
    #: The service of the credential scope (required) (``sts``, ``s3``, ``execute-api``); may use {parameters}.
    service: Templated | None = None
    #: ``signed``: the body's SHA-256 is in the signature; ``unsigned``: ``UNSIGNED-PAYLOAD`` (S3 only).
    payload: typing.Literal["signed", "unsigned"] = "signed"
    #: Send the payload hash as ``X-Amz-Content-SHA256`` (S3 requires it; always sent when ``unsigned``).
    content_sha256_header: bool = False
    #: More headers to sign when a request has them (``host``, ``x-amz-*``, ``content-type`` always are).
    signed_headers: list[_HeaderName] = Field(default_factory=list)

    @field_validator("signed_headers")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [name.lower() for name in value]


class SignaturePlacement(_Model):
    """Where an HMAC signature goes: a header or a query parameter, its value rendered from ``template``."""

    in_: typing.Literal["header", "query"] = Field(default="header", alias="in")
    name: str = Field(default="X-Signature", min_length=1)
    #: The value; ``{signature}`` is the signature, other signing names and {parameters} may be used.
    template: str = "{signature}"

    @field_validator("name")
    @classmethod
    def _header_name(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("in_", "header") == "header" and not _TCHAR.fullmatch(value):
            raise ValueError("is not a valid HTTP header name")
        return value


class HmacSignatureAuth(_Model):
    """An HMAC over a templated canonical string of each request (method, path, query, body digest, time, nonce).

    The secret key is entered when an account connects (``secret_key``), and the key id too when a
    template uses ``{key_id}``, unless parameters of those names supply them.
    """

    type: typing.Literal["hmac_signature"] = "hmac_signature"
    algorithm: typing.Literal["sha1", "sha256", "sha512"] = "sha256"
    #: How the signature is written: ``hex`` (lower case), ``base64`` or ``base64url`` (unpadded).
    encoding: typing.Literal["hex", "base64", "base64url"] = "hex"
    #: How the entered secret is turned into the HMAC key: as UTF-8 ``text``, or decoded ``base64``/``hex``.
    key_encoding: typing.Literal["text", "base64", "hex"] = "text"
    #: The canonical string (required): signing names (``{method}``, ``{path}``, ``{query}``...) and {parameters}.
    string_to_sign: str | None = None
    #: How ``{timestamp}`` is written.
    timestamp: typing.Literal["unix", "unix_ms", "iso8601", "http_date"] = "unix"
    #: How ``{nonce}`` is made: random ``uuid`` or ``hex``, or increasing ``unix_ms``/``unix_us``.
    nonce: typing.Literal["uuid", "hex", "unix_ms", "unix_us"] = "uuid"
    #: The digest of the body that ``{body_digest}`` is, and how it is written.
    body_digest: typing.Literal["sha256", "sha512", "sha1", "md5"] = "sha256"
    body_digest_encoding: typing.Literal["hex", "base64"] = "hex"
    #: The headers ``{headers}`` lists (``name:value`` lines) and ``{header_names}`` names (``a;b``).
    signed_headers: list[_HeaderName] = Field(default_factory=list)
    #: Headers set on every request before signing (``X-Timestamp: "{timestamp}"``, ``X-Key: "{key_id}"``).
    headers: dict[str, Templated] = Field(default_factory=dict)
    #: Query parameters added before signing (``timestamp: "{timestamp}"``).
    query: dict[str, Templated] = Field(default_factory=dict)
    signature: SignaturePlacement = Field(default_factory=SignaturePlacement)

    @field_validator("signed_headers")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [name.lower() for name in value]


AuthSpec = typing.Annotated[
    OAuth2Auth
    | CustomTokenAuth
    | JwtBearerAuth
    | JwtAuth
    | ApiTokenAuth
    | BasicAuth
    | NoneAuth
    | OAuth1Auth
    | AwsSigV4Auth
    | HmacSignatureAuth,
    Field(discriminator="type"),
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
        """The client secret in clear, OAuth 2.0's or OAuth 1.0a's (only the broker should need this)."""
        if isinstance(self.auth, OAuth2Auth | OAuth1Auth) and self.auth.client_secret is not None:
            return self.auth.client_secret.get_secret_value()
        return None

    @property
    def key_parameters(self) -> frozenset[str]:
        """The parameters holding signing keys: their values may be up to MAX_KEY_LENGTH characters long."""
        auth = self.auth
        sources: list[str | list[str]] = []
        if isinstance(auth, JwtAuth):
            sources.append(auth.key)
        elif isinstance(auth, JwtBearerAuth):
            sources.append(auth.assertion.key)
        elif isinstance(auth, OAuth2Auth) and self.client_private_key is not None:
            sources.append(self.client_private_key if _PARAM_REF.fullmatch(self.client_private_key) else [])
        names = {
            name for source in sources for item in ([source] if isinstance(source, str) else source)
            for name in Template.parse(item).references
        }  # fmt: skip
        return frozenset(names)

    @property
    def client_private_key(self) -> str | None:
        """The ``private_key_jwt`` client key in clear (only the broker should need this)."""
        if isinstance(self.auth, OAuth2Auth) and self.auth.client_private_key is not None:
            return self.auth.client_private_key.get_secret_value()
        return None
