"""The values the auth flows work on: what a connection knows (AuthContext), what a token endpoint gave (TokenSet)."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import urlsplit

import httpx

from authbridge.errors import UpstreamError
from authbridge.redact import basic_credentials, scrub
from authbridge.spec import Integration, OAuth2Auth
from authbridge.spec.templating import render_text

__all__ = ["MAX_BODY_BYTES", "AuthContext", "Deferred", "TokenSet", "endpoint_text", "json_object", "resolve"]

#: A token response larger than this is refused unread (the default of AUTHBRIDGE_MAX_UPSTREAM_BODY).
MAX_BODY_BYTES = 1024 * 1024

_PARAM_REF = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_T = typing.TypeVar("_T")

#: A value, or the function that works it out when it is first needed: what only an error message uses
#: (the endpoint as shown, the secrets scrubbed from it) is not computed for the calls that succeed.
Deferred: typing.TypeAlias = _T | Callable[[], _T]


def resolve(value: Deferred[_T]) -> _T:
    """The value of a :data:`Deferred` (calling the function it holds)."""
    return value() if callable(value) else value


@dataclasses.dataclass(frozen=True)
class TokenSet:
    """A parsed token response. The repr shows no token.

    ``extra`` holds every other field of the response (Salesforce's ``instance_url``...) and the
    redirect's captured query parameters; templates read them as ``{credentials.<name>}``.
    """

    access_token: str = dataclasses.field(repr=False)
    refresh_token: str | None = dataclasses.field(default=None, repr=False)
    token_type: str | None = None
    expires_at: datetime | None = None
    scopes: list[str] | None = None
    extra: dict[str, typing.Any] = dataclasses.field(default_factory=dict, repr=False)
    raw: dict[str, typing.Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True)
class AuthContext:
    """Everything a template of one connection may reference, and the server's rules.

    ``inputs`` are what the user entered when connecting (``username``, ``password``, ``token``
    for API tokens); ``credentials`` the fields kept from token responses and callbacks.
    """

    integration: Integration
    parameters: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    inputs: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    credentials: Mapping[str, typing.Any] = dataclasses.field(default_factory=dict, repr=False)
    access_token: str | None = dataclasses.field(default=None, repr=False)
    refresh_token: str | None = dataclasses.field(default=None, repr=False)
    redirect_uri: str | None = None
    #: AuthBridge's client ID metadata document URL, when it serves one (its client id where accepted).
    client_metadata_url: str | None = None
    allow_http: Callable[[str], bool] = lambda _host: False
    clock: Callable[[], datetime] | None = None
    #: The largest token endpoint answer read (AUTHBRIDGE_MAX_UPSTREAM_BODY).
    max_body: int = MAX_BODY_BYTES
    #: Values earlier steps of a multi-step token request captured (``{captured.<name>}``); all secret.
    captured: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def oauth2(self) -> OAuth2Auth:
        """The integration's OAuth 2.0 block (TypeError for other auth types)."""
        if not isinstance(self.integration.auth, OAuth2Auth):
            raise TypeError(f"integration {self.integration.key} is not an OAuth 2.0 integration")
        return self.integration.auth

    def values(self) -> dict[str, str | None]:
        """The template values: parameters, inputs, ``credentials.*``, tokens, client id and secret."""
        values: dict[str, str | None] = dict(self.parameters)
        values.update(self.inputs)
        for name, value in self.credentials.items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                values[f"credentials.{name}"] = str(value)
        for name, text in self.captured.items():
            values[f"captured.{name}"] = text
        if self.access_token is not None:
            values["token"] = self.access_token
        if self.refresh_token is not None:
            values["refresh_token"] = self.refresh_token
        auth = self.integration.auth
        if isinstance(auth, OAuth2Auth):
            if auth.client_id is not None:
                values["client_id"] = render_text(auth.client_id, self.parameters, field="auth.client_id")
            secret = self.integration.client_secret
            if secret is not None and _PARAM_REF.fullmatch(secret):
                # `client_secret: "{clientSecret}"` takes a (secret) parameter; any other value is literal,
                # so a real secret containing braces is never parsed as a template.
                secret = self.parameters.get(secret[1:-1])
            values["client_secret"] = secret
        return values

    def client_private_key(self) -> str | None:
        """The ``private_key_jwt`` key in clear: ``auth.client_private_key``, or the parameter it names (``{key}``)."""
        key = self.integration.client_private_key
        if key is not None and _PARAM_REF.fullmatch(key):
            return self.parameters.get(key[1:-1])
        return key

    def secrets(self, *extra: str | None) -> tuple[str, ...]:
        """Every secret value a request of this connection may carry (to mask in anything shown), longest first."""
        spec = self.integration
        values: list[str | None] = [self.parameters.get(p.name) for p in spec.parameters if p.secret]
        values += [*self.inputs.values(), self.access_token, self.refresh_token, spec.client_secret, *extra]
        values += [*self.captured.values(), spec.client_private_key]
        values += basic_credentials(self.values().get("client_id"), spec.client_secret)  # an echoed Basic header
        return tuple(sorted({v for v in values if v and len(v) >= 3}, key=len, reverse=True))


def json_object(response: httpx.Response, described: str, limit: int) -> dict[str, typing.Any]:
    """The answer's JSON object, or UpstreamError saying that ``described`` ("the X at URL") is too large or not one.

    The answer is described, never quoted: it may hold a secret.
    """
    if len(response.content) > limit:
        raise UpstreamError(f"{described} is larger than {limit} bytes")
    try:
        document = json.loads(response.content)
    except ValueError:
        raise UpstreamError(f"{described} is not JSON") from None
    if not isinstance(document, dict):
        raise UpstreamError(f"{described} is not a JSON object")
    return document


def endpoint_text(url: str | httpx.URL, secrets: typing.Sequence[str] = ()) -> str:
    """A URL without its query or fragment, secret values in its path masked, for messages."""
    parts = urlsplit(str(url))
    return scrub(f"{parts.scheme}://{parts.netloc}{parts.path}", secrets)
