"""The auth-type protocol: what every auth type answers, so the broker, proxy, bridge and console never ask which type.

Each auth type (``auth.type`` of a spec) is one :class:`AuthPlugin` in ``authbridge.auth.plugins``,
found by :func:`authbridge.auth.plugins.plugin_for`. A plugin is sans-IO like the rest of ``auth/``:
it builds ``httpx.Request`` objects and reads ``httpx.Response`` objects; the broker sends them.

- ``inputs(spec)``: what the user enters at connect time (secrets flagged).
- ``discovery(ctx)`` and ``with_discovered(spec, fields)``: what the spec leaves to the server's
  metadata (RFC 8414 / OpenID discovery), fetched by the broker (cached) before the calls below;
  ``registration(ctx, discovered)`` and ``with_client(spec, ...)``: the client when the spec has none:
  AuthBridge's client ID metadata document URL where the server takes one, else a registration
  (RFC 7591), kept encrypted by the broker and reused.
- ``begin(ctx)``: a :class:`Redirect` (URL and flow state to keep), a :data:`TokenFlow` to run now,
  :class:`Entered` credentials, or None (nothing to store). A redirect that needs requests first
  (OAuth 1.0a asks for a request token before it can build the authorize URL) is a
  :class:`RedirectExchange`: a :data:`RedirectFlow` the broker drives like a token flow (same limits,
  same errors: a refusal stores nothing), which returns the :class:`Redirect`. Whatever the flow
  must remember for the callback (the request token's secret) goes in ``Redirect.code_verifier``:
  kept encrypted with the flow state, never in the URL.
- ``callback(ctx, query)`` then ``finish(ctx, callback)``: the token flow after the provider's redirect.
- ``refresh(ctx)``: a token flow, or an error saying why it cannot (``TokenEndpointError`` with
  ``permanent`` when only the user can help).
- ``revoke(ctx)``: the revocation requests to send, each standing alone.
- ``placement(ctx)`` and ``apply(ctx, request)``: where the credentials go on an API request.
- ``signs(spec)`` and ``sign(ctx, request)``: a type that signs each request (OAuth 1.0a, AWS
  Signature Version 4, an HMAC over a canonical string) computes the signature over the request as
  it will be sent (method, URL with its query, headers, body), after the placement. The proxy then
  buffers the body (up to its replay limit) and signs each attempt; types that do not sign cost nothing.

A :data:`TokenFlow` is a generator: it yields each request to send and is sent each answer; it
returns the :class:`TokenSet`. One request is the common case; multi-step token requests (a nonce
first, an app JWT then an installation token) yield several.

```
flow = plugin_for(spec.auth).refresh(ctx).flow
request = next(flow)
while True:
    try:
        request = flow.send(await send(request))
    except StopIteration as done:
        tokens = done.value
        break
```
"""

from __future__ import annotations

import builtins
import dataclasses
import typing
from collections.abc import Generator, Mapping
from urllib.parse import parse_qsl

import httpx
from pydantic import BaseModel

from authbridge.auth.base import AuthContext, Deferred, TokenSet, endpoint_text
from authbridge.auth.discovery import DiscoveryFlow
from authbridge.auth.form import Field
from authbridge.auth.placement import standard_placement
from authbridge.auth.requests import RevokeRequest
from authbridge.auth.tokens import parse_token_response
from authbridge.errors import ConnectionStateError, ErrorItem
from authbridge.spec import Integration
from authbridge.spec.templating import references_of

__all__ = [
    "CREDENTIAL_INPUTS",
    "AuthPlugin",
    "Callback",
    "Entered",
    "Input",
    "Redirect",
    "RedirectExchange",
    "RedirectFlow",
    "TokenExchange",
    "TokenFlow",
]

#: The sans-IO token exchange: yields each request, is sent each answer, returns the tokens.
TokenFlow = Generator[httpx.Request, httpx.Response, TokenSet]


@dataclasses.dataclass(frozen=True)
class Input:
    """A credential the user enters at connect time (form name ``cred.<name>``, API ``credentials.<name>``)."""

    name: str
    label: str
    secret: bool = False
    #: False: the user may leave it empty (an AWS session token).
    required: bool = True


#: The entered credentials a token request may use.
CREDENTIAL_INPUTS = {"username": Input("username", "Username"), "password": Input("password", "Password", secret=True)}


@dataclasses.dataclass(frozen=True)
class Redirect:
    """Send the browser to ``url``; ``state`` and ``code_verifier`` are kept server-side for the callback.

    ``code_verifier`` is the flow's secret, stored encrypted: the PKCE verifier (OAuth 2.0), the
    request token and its secret (OAuth 1.0a). The callback gets it back.
    """

    url: str
    state: str
    code_verifier: str | None = dataclasses.field(default=None, repr=False)


#: The requests a redirect needs before the browser goes (OAuth 1.0a's request token); returns the Redirect.
RedirectFlow = Generator[httpx.Request, httpx.Response, Redirect]


@dataclasses.dataclass(frozen=True)
class RedirectExchange:
    """A redirect that needs requests first: the broker sends what ``flow`` yields, saves the Redirect it returns."""

    flow: RedirectFlow = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class Entered:
    """Credentials the user entered, stored as they are: a token and the inputs kept for placement."""

    access_token: str | None = dataclasses.field(default=None, repr=False)
    inputs: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True)
class Callback:
    """An accepted redirect back from the provider: the code, the flow's verifier, the whole query (for hooks)."""

    code: str = dataclasses.field(repr=False)
    code_verifier: str | None = dataclasses.field(default=None, repr=False)
    query: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True)
class TokenExchange:
    """A token flow, and what a ``get_token_data`` hook needs to stand in for it.

    ``hookable`` is False for flows the hook does not replace (the ``refresh_token`` grant).
    ``secrets`` are the values the requests carry beyond the connection's own (a code, a verifier).
    """

    flow: TokenFlow
    hookable: bool = True
    code: str | None = dataclasses.field(default=None, repr=False)
    code_verifier: str | None = dataclasses.field(default=None, repr=False)
    query: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def secrets(self) -> tuple[str | None, ...]:
        return (self.code, self.code_verifier)


def _assertions(request: httpx.Request) -> list[str]:
    """The signed JWTs a token request carries (``client_assertion``, ``assertion``): never quoted back."""
    fields = parse_qsl(request.url.query.decode("ascii", "replace"))
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        fields += parse_qsl(request.content.decode("utf-8", "replace"))
    return [value for name, value in fields if name in ("client_assertion", "assertion")]


class AuthPlugin:
    """One auth type. The defaults describe a type without credentials (``none``); each type overrides what it has."""

    #: The ``auth.type`` this plugin serves.
    type: typing.ClassVar[str] = ""
    #: How the console names it.
    label: typing.ClassVar[str] = ""
    #: The spec model of its ``auth`` block (a default instance fills the console's form).
    model: typing.ClassVar[builtins.type[BaseModel]]
    #: The console form's section of this type: its title (none when empty), intro and fields.
    form_title: typing.ClassVar[str] = ""
    form_intro: typing.ClassVar[str] = ""
    form_fields: typing.ClassVar[tuple[Field, ...]] = ()
    #: The shared form sections it uses: ``token_response``, ``hooks``, ``token``, ``refresh``.
    form_sections: typing.ClassVar[tuple[str, ...]] = ()

    # -- what it is ---------------------------------------------------------------------------

    def inputs(self, spec: Integration) -> tuple[Input, ...]:
        """What the user enters at connect time."""
        return ()

    def redirects(self, spec: Integration) -> bool:
        """Whether connecting sends the browser to the provider (and back to the OAuth callback)."""
        return False

    def refreshable(self, spec: Integration) -> bool:
        """Whether its credentials come from a token endpoint (refreshed in the window and after a rejection)."""
        return False

    def entered(self, spec: Integration) -> bool:
        """Whether its credentials are entered by the user (and may be replaced in place)."""
        return False

    def stores_credentials(self, spec: Integration) -> bool:
        """Whether a connection of this type holds credentials at all."""
        return True

    def revokes(self, spec: Integration) -> bool:
        """Whether deleting a connection revokes its tokens upstream."""
        return False

    def style(self, spec: Integration) -> str:
        """How a person names the spec's auth style (``oauth2 (authorization_code)``, ``api_token``)."""
        return self.type

    def scopes(self, spec: Integration) -> list[str]:
        """The scopes the spec asks for by default (none for types without scopes)."""
        return []

    def client_app(self, spec: Integration) -> tuple[str | list[str] | None, str | None] | None:
        """The spec's own client (``client_id``, ``client_secret``) when the type has one, else None."""
        return None

    def signs(self, spec: Integration) -> bool:
        """Whether each API request is signed (method, URL, headers, body) rather than carrying fixed credentials."""
        return False

    def token_warning(self, spec: Integration, tokens: TokenSet) -> str | None:
        """What to tell the user about a token answer that lacks something the type expected (a refresh token)."""
        return None

    def error_hint(self, spec: Integration, error: str) -> tuple[str, str] | None:
        """Advice on a provider's error text: what to check, and the console form field to fix (or None)."""
        return None

    def incomplete(self, spec: Integration) -> list[ErrorItem]:
        """What a valid spec still lacks to work (a confidential client without its secret); the console refuses it."""
        return []

    def has_hooks(self) -> bool:
        """Whether its ``auth`` block has ``hooks``."""
        return "hooks" in self.model.model_fields

    # -- what it does -------------------------------------------------------------------------

    def discovery(self, ctx: AuthContext) -> tuple[str, DiscoveryFlow] | None:
        """What the spec leaves to discovery: the cache key (the rendered source URL) and the fetch; None: nothing."""
        return None

    def with_discovered(self, spec: Integration, fields: Mapping[str, typing.Any]) -> Integration:
        """The spec with what discovery found filled in (explicit fields win)."""
        return spec

    def with_scopes(
        self, spec: Integration, parameters: Mapping[str, str], add: typing.Sequence[str] = ()
    ) -> Integration:
        """The spec's scopes as one connection asks for them: entries written ``{name}`` replaced by that
        parameter's value (split on spaces), then ``add`` (scopes a resource server asked for) appended."""
        return spec

    def registration(
        self, ctx: AuthContext, discovered: Mapping[str, typing.Any]
    ) -> tuple[str, httpx.Request] | str | None:
        """The client the spec leaves to the server: a registration (its endpoint and request), a client id to
        use as it is (AuthBridge's client ID metadata document URL), or None (a client is configured).

        ``discovered`` is what discovery found (the server's metadata says which client kinds it takes).
        """
        return None

    def with_client(self, spec: Integration, client_id: str, client_secret: str | None) -> Integration:
        """The spec with a registered client in place."""
        return spec

    def begin(self, ctx: AuthContext) -> Redirect | RedirectExchange | TokenExchange | Entered | None:
        """Start a connection: a redirect (or the requests that make one), a token flow to run now, entered
        credentials, or nothing to store."""
        return None

    def callback(self, ctx: AuthContext, query: Mapping[str, str], code_verifier: str | None) -> Callback:
        """Accept the provider's redirect (CallbackError when it cannot be)."""
        raise ConnectionStateError(f"a {self.type} connection is not authorized through a redirect")

    def finish(self, ctx: AuthContext, callback: Callback) -> TokenExchange:
        """The token flow that ends an authorization, once the redirect is accepted."""
        raise ConnectionStateError(f"a {self.type} connection is not authorized through a redirect")

    def refresh(self, ctx: AuthContext) -> TokenExchange:
        """The token flow of a refresh, or an error saying why there is none."""
        raise ConnectionStateError(f"a {self.type} connection has no token to refresh")

    def revoke(self, ctx: AuthContext) -> list[RevokeRequest]:
        """The revocation requests (empty when there is nothing to revoke)."""
        return []

    def read_token(
        self,
        ctx: AuthContext,
        response: httpx.Response,
        *,
        endpoint: Deferred[str],
        secrets: Deferred[tuple[str, ...]],
    ) -> TokenSet:
        """Read a token endpoint's answer (or a ``get_token_data`` hook's) into a TokenSet.

        ``endpoint`` and ``secrets`` are for messages only (each may be the function that makes it).
        """
        raise TypeError(f"a {self.type} integration has no token endpoint")

    def placement(self, ctx: AuthContext) -> tuple[dict[str, str], dict[str, str]]:
        """The headers and query parameters every API request carries (the integration's, then the credentials)."""
        return standard_placement(ctx, token=True)

    def apply(self, ctx: AuthContext, request: httpx.Request) -> httpx.Request:
        """Put the credentials on one API request: the placement, then (a signing type) the signature."""
        headers, query = self.placement(ctx)
        if query:
            request.url = request.url.copy_merge_params(query)
        request.headers.update(headers)
        return self.sign(ctx, request) if self.signs(ctx.integration) else request

    def sign(self, ctx: AuthContext, request: httpx.Request) -> httpx.Request:
        """Sign a request that already carries the placement (its body read); the default signs nothing."""
        return request

    # -- helpers for token-endpoint types -----------------------------------------------------

    def _referenced_inputs(self, spec: Integration, sources: typing.Iterable[object]) -> tuple[Input, ...]:
        """``username``/``password`` when the token request's templates use them and no parameter supplies them."""
        used: set[str] = set()
        for source in sources:
            if isinstance(source, str | list):
                used |= references_of(source) & {"username", "password"}
        used -= {p.name for p in spec.parameters}  # a parameter of that name supplies it
        return tuple(CREDENTIAL_INPUTS[name] for name in sorted(used, reverse=True))

    def _one_request(
        self, ctx: AuthContext, build: typing.Callable[[], httpx.Request], *extra: str | None
    ) -> TokenFlow:
        """A flow of one request: build it, send it, read the answer (its client assertion masked like a secret).

        The secrets, and the endpoint as messages show it, are worked out only if a message needs them.
        """
        request = build()
        response = yield request

        def secrets() -> tuple[str, ...]:
            return ctx.secrets(*extra, *_assertions(request))

        return self.read_token(ctx, response, endpoint=lambda: endpoint_text(request.url, secrets()), secrets=secrets)

    def _parse(
        self,
        ctx: AuthContext,
        response: httpx.Response,
        endpoint: Deferred[str],
        secrets: Deferred[tuple[str, ...]],
        **kwargs: typing.Any,
    ) -> TokenSet:
        now = ctx.clock() if ctx.clock is not None else None
        if now is None:
            raise ValueError("the context needs a clock to read a token answer")
        return parse_token_response(
            ctx.integration,
            response,
            now=now,
            endpoint=endpoint,
            previous_refresh_token=ctx.refresh_token,
            secrets=secrets,
            max_body=ctx.max_body,
            **kwargs,
        )
