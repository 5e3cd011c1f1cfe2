"""Connected accounts: create, authorize (OAuth callback), fetch and refresh tokens, revoke, test."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import typing
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx

from authbridge.auth import (
    AuthContext,
    Entered,
    Redirect,
    RedirectExchange,
    TokenExchange,
    TokenSet,
    api_request,
    callback_fields,
    plugin_for,
    revocation_problem,
)
from authbridge.auth.base import Deferred, endpoint_text, resolve
from authbridge.auth.discovery import DiscoveryFlow
from authbridge.auth.hooks import HookContext, call_hook, load_hook, token_set_from_credentials
from authbridge.auth.lifecycle import MAX_WANTED_SCOPES, effective_window, insufficient_scope
from authbridge.auth.registration import read_registration
from authbridge.broker.lru import LRU
from authbridge.broker.refresh import TokenKeeper, credentials_from, ttl_warning
from authbridge.broker.token_cache import TokenCache
from authbridge.broker.upstream import UpstreamLimits, bounded_client, exchange
from authbridge.errors import (
    AuthBridgeError,
    CallbackError,
    ConnectError,
    ConnectionStateError,
    ErrorItem,
    ParameterError,
    UpstreamError,
)
from authbridge.metrics import Metrics
from authbridge.redact import redact, scrub
from authbridge.spec import Integration, check_parameter_values
from authbridge.spec.validate import MAX_PARAMETER_LENGTH
from authbridge.store import ClientRegistration, ConnectionRecord, CredentialRecord, Store
from authbridge.tracing import Tracer
from authbridge.types import Clock

__all__ = [
    "CallbackResult",
    "Connected",
    "Connections",
    "DeleteResult",
    "FlowBinding",
    "FreshToken",
    "Owner",
    "TestResult",
    "TokenRevocation",
]

logger = logging.getLogger("authbridge.broker")

FLOW_TTL = timedelta(minutes=10)
#: How long discovered metadata is used before it is fetched again, and how many sources are kept.
DISCOVERY_TTL = 3600.0
DISCOVERY_CACHE_SIZE = 1024
#: A new authorization registers again when the client's secret expires within this (the flow's life, and a minute).
REGISTRATION_MARGIN = FLOW_TTL + timedelta(minutes=1)
_T = typing.TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class FlowBinding:
    """Ties an authorization flow to the connect session and the browser that started it.

    ``browser`` is the SHA-256 of a random cookie that browser holds; the callback must present it.
    """

    session_id: str | None
    browser: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class Owner:
    """Whose connection it is: the application's end user, their organization, free-form tags."""

    end_user: dict[str, str] | None = None
    organization: dict[str, str] | None = None
    tags: dict[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class Connected:
    """A new connection, and the URL the user must open when it needs authorization."""

    connection: ConnectionRecord
    authorize_url: str | None = None


@dataclasses.dataclass(frozen=True)
class CallbackResult:
    """What the OAuth callback did: the connection, where to send the browser, the provider's error."""

    connection: ConnectionRecord
    return_to: str | None
    error: str | None = None
    #: The connect session the flow was started from (now completed when the authorization worked).
    connect_session_id: str | None = None


@dataclasses.dataclass(frozen=True)
class TokenRevocation:
    """What revoking one token did: which token (``refresh_token`` | ``access_token``), and why it failed."""

    token_type: str
    revoked: bool
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class DeleteResult:
    """A deleted connection: whether every token was revoked upstream, why not, and each token's outcome."""

    revoked: bool
    revoke_error: str | None = None
    tokens: tuple[TokenRevocation, ...] = ()


@dataclasses.dataclass(frozen=True)
class FreshToken:
    """A valid access token for apps that call the API themselves."""

    access_token: str = dataclasses.field(repr=False)
    token_type: str
    expires_at: datetime | None


@dataclasses.dataclass(frozen=True)
class TestResult:
    """The outcome of a connection's test request."""

    __test__ = False

    ok: bool
    status: int | None
    detail: str


def _secrets_of(ctx: AuthContext, *extra: str | None) -> tuple[str, ...]:
    """Every secret value a request of this connection may carry (to mask in anything shown)."""
    return ctx.secrets(*extra)


def _endpoint(url: str | httpx.URL, secrets: typing.Sequence[str] = ()) -> str:
    """A URL without its query or fragment, secret values in its path masked, for messages."""
    return endpoint_text(url, secrets)


def _answer_to(request: httpx.Request) -> typing.Generator[httpx.Request, httpx.Response, httpx.Response]:
    """The flow of one request: its answer, as it came."""
    return (yield request)


def _required_inputs(spec: Integration) -> tuple[set[str], set[str]]:
    """The credentials a user must enter to connect, and those they may enter (the auth type says)."""
    inputs = plugin_for(spec.auth).inputs(spec)
    return {i.name for i in inputs if i.required}, {i.name for i in inputs}


class Connections:
    """The connected-account operations the API, console and CLI share."""

    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        *,
        redirect_uri: str,
        allow_http: Callable[[str], bool],
        return_origin_allowed: Callable[[str], bool],
        hook_allowed: Callable[[str], bool] = lambda _reference: False,
        refresh_deadline: float = 30.0,
        limits: UpstreamLimits | None = None,
        max_parameter_length: int = MAX_PARAMETER_LENGTH,
        client_metadata_url: str | None = None,
        clock: Clock,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.tracer = tracer
        self.http = http
        self.limits = limits or UpstreamLimits()
        #: What hooks get as ``ctx.http``: the same client, read through the same limits.
        self.hook_http = bounded_client(http, self.limits)
        self.redirect_uri = redirect_uri
        self.allow_http = allow_http
        self.return_origin_allowed = return_origin_allowed
        self.hook_allowed = hook_allowed
        self.max_parameter_length = max_parameter_length
        #: AuthBridge's client ID metadata document URL (None: not served, so never offered as a client id).
        self.client_metadata_url = client_metadata_url
        self.clock = clock
        self.keeper = TokenKeeper(
            store, fetch=self.fetch_refresh, clock=clock, deadline=refresh_deadline, metrics=metrics, tracer=tracer
        )
        #: Discovered metadata fields by source URL: (monotonic expiry, fields), least recently used first.
        self._discovered: LRU[str, tuple[float, dict[str, typing.Any]]] = LRU(DISCOVERY_CACHE_SIZE)
        #: One registration at a time per integration and endpoint in this process.
        self._registering: dict[tuple[str, str], asyncio.Lock] = {}
        #: ``token()``'s cache; caches nothing until the broker ties it to the invalidation log (``trusted``).
        self.tokens: TokenCache[FreshToken] = TokenCache(clock=clock)
        self.keeper.listeners.append(self.tokens.forget)

    # -- helpers ------------------------------------------------------------------------------

    def context(
        self,
        spec: Integration,
        parameters: Mapping[str, str],
        creds: CredentialRecord | None = None,
        *,
        inputs: Mapping[str, str] | None = None,
        redirect_uri: str | None = None,
    ) -> AuthContext:
        """Everything one connection's templates may use, under this server's rules (one place builds it)."""
        return AuthContext(
            integration=spec,
            parameters=parameters,
            inputs=inputs if inputs is not None else (creds.inputs if creds else {}),
            credentials=creds.extra if creds else {},
            access_token=creds.access_token if creds else None,
            refresh_token=creds.refresh_token if creds else None,
            redirect_uri=redirect_uri or self.redirect_uri,
            client_metadata_url=self.client_metadata_url,
            allow_http=self.allow_http,
            clock=self.clock,
            max_body=self.limits.max_body,
        )

    async def _send(
        self, request: httpx.Request, *, integration: str, secrets: Deferred[typing.Sequence[str]] = ()
    ) -> httpx.Response:
        """Send one request and read its answer within the limits (cap after decompression, total deadline).

        The endpoint as messages show it (secrets masked) is worked out only if one is raised.
        """
        return await exchange(
            self.http,
            request,
            limits=self.limits,
            integration=integration,
            endpoint=lambda: _endpoint(request.url, resolve(secrets)),
        )

    async def _token_call(
        self, request: httpx.Request, *, integration: str, secrets: Deferred[typing.Sequence[str]]
    ) -> httpx.Response:
        """One call to a token endpoint: ``_send``, timed for the metrics and traced (W3C context sent along)."""
        if self.metrics is None and self.tracer is None:
            return await self._send(request, integration=integration, secrets=secrets)
        start, outcome = time.perf_counter(), "error"
        try:
            if self.tracer is None:
                response = await self._send(request, integration=integration, secrets=secrets)
            else:
                attributes = {
                    "http.request.method": request.method,
                    "server.address": request.url.host,
                    "authbridge.integration": integration,
                }
                with self.tracer.client("token endpoint", attributes) as span:
                    self.tracer.inject(request.headers)
                    response = await self._send(request, integration=integration, secrets=secrets)
                    span.set_attribute("http.response.status_code", response.status_code)
            outcome = "ok" if response.is_success else "error"
            return response
        finally:
            if self.metrics is not None:
                self.metrics.token_call(integration, outcome, time.perf_counter() - start)

    def _hook(self, spec: Integration, name: str) -> Callable[..., typing.Any] | None:
        hooks = getattr(spec.auth, "hooks", None)
        reference = getattr(hooks, name, None) if hooks is not None else None
        if reference is None:
            return None
        return load_hook(reference, allowed=self.hook_allowed, field=f"auth.hooks.{name}")

    def _hook_context(self, ctx: AuthContext, **extra: typing.Any) -> HookContext:
        return HookContext(
            integration=ctx.integration.key,
            parameters=dict(ctx.parameters),
            inputs=dict(ctx.inputs),
            credentials={
                **ctx.credentials,
                **({"access_token": ctx.access_token} if ctx.access_token else {}),
                **({"refresh_token": ctx.refresh_token} if ctx.refresh_token else {}),
            },
            http=self.hook_http,
            redirect_uri=ctx.redirect_uri,
            **extra,
        )

    async def _token(self, ctx: AuthContext, exchange: TokenExchange) -> TokenSet:
        """Run one token flow (or the ``get_token_data`` hook in its place) and read its answer.

        The ``credentials_from_token_response`` hook, when set, turns the answer into credentials.
        """
        spec = ctx.integration
        plugin = plugin_for(spec.auth)

        def secrets() -> tuple[str, ...]:  # for messages: worked out if one is needed
            return _secrets_of(ctx, *exchange.secrets)

        query = dict(exchange.query)
        get_token_data = self._hook(spec, "get_token_data") if exchange.hookable else None
        if get_token_data is not None:
            exchange.flow.close()
            hook_ctx = self._hook_context(ctx, code=exchange.code, code_verifier=exchange.code_verifier, query=query)
            data = await call_hook(get_token_data, hook_ctx, integration=spec.key, name="get_token_data")
            endpoint = f"hook {spec.auth.hooks.get_token_data}"  # type: ignore[union-attr]
            tokens = plugin.read_token(ctx, httpx.Response(200, json=data), endpoint=endpoint, secrets=secrets)
        else:
            tokens = await self._run(exchange, integration=spec.key, secrets=secrets)
        transform = self._hook(spec, "credentials_from_token_response")
        if transform is not None:
            hook_ctx = self._hook_context(ctx, code=exchange.code, query=query)
            result = await call_hook(
                transform, hook_ctx, dict(tokens.raw), integration=spec.key, name="credentials_from_token_response"
            )
            tokens = token_set_from_credentials(result, now=self.clock(), integration=spec.key)
        return tokens

    async def resolved(
        self,
        spec: Integration,
        parameters: Mapping[str, str],
        creds: CredentialRecord | None = None,
        *,
        starting: bool = False,
        wanted_scopes: typing.Sequence[str] = (),
    ) -> Integration:
        """The spec with what it leaves to the server filled in: discovered endpoints, a registered client.

        Metadata is cached per source URL for DISCOVERY_TTL; a registered client is stored (encrypted)
        per integration and registration endpoint. ``starting`` (a new authorization or grant) registers
        again when the stored secret expires before the flow could end; otherwise the stored client is
        used as it is: the code and refresh tokens of a connection belong to the client that asked for them.
        Scopes written ``{name}`` take the connection's parameter (before discovery, so given scopes win);
        ``wanted_scopes`` (a resource server's step-up) are added after it.

        Raises:
            UpstreamError: the metadata could not be fetched or was refused, or registration failed.
        """
        return (
            await self._resolved_context(spec, parameters, creds, starting=starting, wanted_scopes=wanted_scopes)
        ).integration

    async def _resolved_context(
        self,
        spec: Integration,
        parameters: Mapping[str, str],
        creds: CredentialRecord | None = None,
        *,
        starting: bool = False,
        wanted_scopes: typing.Sequence[str] = (),
    ) -> AuthContext:
        """``resolved``'s spec in the connection's context (``context()`` of it): made once for a refresh."""
        plugin = plugin_for(spec.auth)
        spec = plugin.with_scopes(spec, parameters)  # before discovery: scopes given win over the server's
        ctx = self.context(spec, parameters, creds)
        found = plugin.discovery(ctx)
        discovered: dict[str, typing.Any] = {}
        if found is not None:
            discovered = await self._discover(spec.key, *found)
            spec = plugin.with_discovered(spec, discovered)
        if wanted_scopes:
            spec = plugin.with_scopes(spec, parameters, wanted_scopes)
        if ctx.integration is not spec:
            ctx = dataclasses.replace(ctx, integration=spec)
        registration = plugin.registration(ctx, discovered)
        if registration is None:
            return ctx
        if isinstance(registration, str):
            # A client ID metadata document: nothing to store.
            spec = plugin.with_client(spec, registration, None)
        else:
            client = await self._registered(spec.key, *registration, starting=starting)
            spec = plugin.with_client(spec, client.client_id, client.client_secret)
        return dataclasses.replace(ctx, integration=spec)

    async def _discover(self, integration: str, source: str, flow: DiscoveryFlow) -> dict[str, typing.Any]:
        now = time.monotonic()
        cached = self._discovered.get(source)
        if cached is not None and cached[0] > now:
            flow.close()
            return cached[1]
        fields = await self._drive(flow, integration=integration, secrets=(), token_endpoint=False)
        self._discovered[source] = (now + DISCOVERY_TTL, fields)
        return fields

    def _usable(self, client: ClientRegistration | None, starting: bool) -> typing.TypeGuard[ClientRegistration]:
        if client is None:
            return False
        return not starting or client.expires_at is None or client.expires_at > self.clock() + REGISTRATION_MARGIN

    async def _registered(
        self, integration: str, endpoint: str, request: httpx.Request, *, starting: bool
    ) -> ClientRegistration:
        """The client registered for this integration at ``endpoint``: the stored one, or a new registration."""
        stored = await self.store.registrations.get(integration, endpoint)
        if self._usable(stored, starting):
            return stored
        async with self._registering.setdefault((integration, endpoint), asyncio.Lock()):
            stored = await self.store.registrations.get(integration, endpoint)
            if self._usable(stored, starting):
                return stored  # another request of this process registered meanwhile
            response = await self._drive(_answer_to(request), integration=integration, secrets=(), token_endpoint=False)
            registered = read_registration(response, endpoint=endpoint)
            client = ClientRegistration(registered.client_id, registered.client_secret, registered.expires_at)
            kept = await self.store.registrations.save(integration, endpoint, client, replace=stored is not None)
            await self.store.events.add(
                "integration.client_registered", integration_key=integration, data={"endpoint": endpoint}
            )
            return kept

    async def _run(
        self, exchange: TokenExchange, *, integration: str, secrets: Deferred[typing.Sequence[str]]
    ) -> TokenSet:
        """Drive a sans-IO token flow: send each request it yields, hand it each answer, return its tokens."""
        return await self._drive(exchange.flow, integration=integration, secrets=secrets)

    async def _begin(self, ctx: AuthContext) -> Redirect | TokenExchange | Entered | None:
        """The plugin's start; a redirect that needs requests first (OAuth 1.0a's request token) is run here.

        Raises:
            ConnectError: the provider refused those requests (nothing is stored).
        """
        start = plugin_for(ctx.integration.auth).begin(ctx)
        if not isinstance(start, RedirectExchange):
            return start
        try:
            return await self._drive(start.flow, integration=ctx.integration.key, secrets=_secrets_of(ctx))
        except UpstreamError as exc:
            raise ConnectError(f"could not start the authorization: {exc}") from None

    async def _drive(
        self,
        flow: typing.Generator[httpx.Request, httpx.Response, _T],
        *,
        integration: str,
        secrets: Deferred[typing.Sequence[str]],
        token_endpoint: bool = True,
    ) -> _T:
        """Send each request a sans-IO flow yields, hand it each answer, return what it returns.

        A flow may send nothing (a self-signed JWT is made here): it returns at once. Token endpoint
        calls are timed and traced (``_token_call``); metadata and registration requests
        (``token_endpoint=False``) are sent as they are, within the same limits.
        """
        try:
            request = next(flow)
        except StopIteration as done:
            return typing.cast(_T, done.value)
        while True:
            try:
                if token_endpoint:
                    response = await self._token_call(request, integration=integration, secrets=secrets)
                else:
                    response = await self._send(request, integration=integration, secrets=secrets)
            except UpstreamError as exc:
                # A multi-step flow re-raises it naming its step (its captures scrubbed); none can go on.
                flow.throw(exc)
                raise AssertionError("a token flow went on after a failed request") from exc  # pragma: no cover
            try:
                request = flow.send(response)
            except StopIteration as done:
                return typing.cast(_T, done.value)

    async def fetch_refresh(
        self, connection: ConnectionRecord, spec: Integration, creds: CredentialRecord | None
    ) -> TokenSet:
        """One refresh against the upstream (the TokenKeeper calls this under its lease).

        Authorization code: the refresh_token grant (or ``refresh.request``); client credentials,
        password and custom token: the token request again; ``refresh_credentials`` hook when set.
        """
        ctx = await self._resolved_context(spec, connection.parameters, creds)
        spec = ctx.integration
        hook = self._hook(spec, "refresh_credentials")
        if hook is not None:
            result = await call_hook(hook, self._hook_context(ctx), integration=spec.key, name="refresh_credentials")
            current = {"refresh_token": creds.refresh_token} if creds and creds.refresh_token else {}
            merged = {**current, **(result if isinstance(result, Mapping) else {"access_token": None})}
            return token_set_from_credentials(merged, now=self.clock(), integration=spec.key)
        return await self._token(ctx, plugin_for(spec.auth).refresh(ctx))

    def _warning(self, spec: Integration, tokens: TokenSet) -> str | None:
        warnings = (ttl_warning(spec, tokens, self.clock), plugin_for(spec.auth).token_warning(spec, tokens))
        return "; ".join(w for w in warnings if w) or None

    def _check_inputs(self, spec: Integration, credentials: Mapping[str, object]) -> dict[str, str]:
        required, allowed = _required_inputs(spec)
        errors: list[ErrorItem] = []
        for name in credentials:
            if name not in allowed:
                accepted = ", ".join(sorted(allowed)) or "none"
                errors.append(
                    ErrorItem(f"credentials.{name}", f"is not used by {spec.auth.type} (accepted: {accepted})")
                )
        inputs: dict[str, str] = {}
        for name in sorted(allowed):
            value = credentials.get(name)
            if (value is None or value == "") and name not in required:
                continue
            if value is None or value == "":
                errors.append(ErrorItem(f"credentials.{name}", f"is required for {spec.auth.type}"))
            elif not isinstance(value, str):
                errors.append(ErrorItem(f"credentials.{name}", "must be a string"))
            else:
                inputs[name] = value
        if errors:
            raise ParameterError(errors)
        return inputs

    def check_return_to(self, return_to: str | None) -> None:
        """ParameterError unless ``return_to`` is on an allowed origin (None is fine)."""
        if return_to is None:
            return
        parts = urlsplit(return_to)
        origin = f"{parts.scheme}://{parts.netloc}"
        if parts.scheme not in {"http", "https"} or not parts.netloc or not self.return_origin_allowed(origin):
            raise ParameterError([ErrorItem("return_to", "its origin is not in AUTHBRIDGE_ALLOWED_RETURN_ORIGINS")])
        if any(name in {"code", "state"} for name, _ in parse_qsl(parts.query, keep_blank_values=True)):
            raise ParameterError(
                [ErrorItem("return_to", "must not carry a code or state parameter: the callback never passes them on")]
            )

    async def _save_flow(
        self,
        connection_id: str,
        flow: Redirect,
        return_to: str | None,
        binding: FlowBinding | None = None,
    ) -> str:
        await self.store.flows.create(
            state=flow.state,
            connection_id=connection_id,
            code_verifier=flow.code_verifier,
            redirect_uri=self.redirect_uri,
            return_to=return_to,
            ttl=FLOW_TTL,
            connect_session_id=binding.session_id if binding else None,
            browser_binding=binding.browser if binding else None,
        )
        return flow.url

    async def _start_flow(
        self, connection: ConnectionRecord, spec: Integration, return_to: str | None, binding: FlowBinding | None = None
    ) -> str:
        spec = await self.resolved(spec, connection.parameters, starting=True, wanted_scopes=connection.wanted_scopes)
        flow = await self._begin(self.context(spec, connection.parameters))
        if not isinstance(flow, Redirect):
            raise ConnectionStateError(f"a {spec.auth.type} connection is not authorized through a redirect")
        return await self._save_flow(connection.id, flow, return_to, binding)

    # -- operations ---------------------------------------------------------------------------

    async def create(
        self,
        *,
        integration_key: str,
        name: str,
        parameters: Mapping[str, object],
        credentials: Mapping[str, object],
        return_to: str | None = None,
        owner: Owner | None = None,
        binding: FlowBinding | None = None,
    ) -> Connected:
        """Create a connected account. Nothing is stored when the input or the upstream is refused.

        ``owner`` says whose account it is (the application's end user, their organization, tags).
        """
        owned = dataclasses.asdict(owner) if owner else {}
        spec = (await self.store.integrations.get(integration_key)).spec
        problems: list[ErrorItem] = []
        values: dict[str, str] = {}
        inputs: dict[str, str] = {}
        try:
            values.update(
                check_parameter_values(
                    spec, parameters, allow_http=self.allow_http, max_length=self.max_parameter_length
                )
            )
        except ParameterError as exc:
            problems.extend(exc.errors)
        try:
            inputs.update(self._check_inputs(spec, credentials))
        except ParameterError as exc:
            problems.extend(exc.errors)
        try:
            self.check_return_to(return_to)
        except ParameterError as exc:
            problems.extend(exc.errors)
        if not name.strip():
            problems.append(ErrorItem("name", "is required"))
        if problems:
            raise ParameterError(problems)
        secret_names = {p.name for p in spec.parameters if p.secret}
        try:
            spec = await self.resolved(spec, values, starting=True)
        except UpstreamError as exc:
            raise ConnectError(f"could not prepare the authorization server: {exc}") from None
        ctx = self.context(spec, values, inputs=inputs)
        start = await self._begin(ctx)  # a URL that cannot be built (or a refused request token) stores nothing

        if isinstance(start, Redirect):
            record = await self.store.connections.create(
                integration_key=spec.key,
                name=name,
                parameters=values,
                secret_names=secret_names,
                status="pending",
                **owned,
            )
            url = await self._save_flow(record.id, start, return_to, binding)
            await self.store.events.add(
                "connection.created",
                connection_id=record.id,
                integration_key=spec.key,
                data={"name": name, "status": "pending"},
            )
            return Connected(record, url)

        creds: CredentialRecord | None = None
        warning = None
        if isinstance(start, TokenExchange):
            try:
                tokens = await self._token(ctx, start)
            except UpstreamError as exc:
                raise ConnectError(f"could not get a token: {exc}") from None
            creds = credentials_from(tokens, inputs=inputs)
            warning = self._warning(spec, tokens)
        elif isinstance(start, Entered):
            creds = CredentialRecord(access_token=start.access_token, inputs=dict(start.inputs))
        record = await self.store.connections.create(
            integration_key=spec.key, name=name, parameters=values, secret_names=secret_names, status="active", **owned
        )
        if creds is not None:
            await self.store.credentials.save(record.id, creds)
        await self.store.connections.set_status(
            record.id,
            "active",
            warning=warning,
            expires_at=creds.expires_at if creds else None,
            refreshed=creds is not None,
        )
        await self.store.events.add(
            "connection.created",
            connection_id=record.id,
            integration_key=spec.key,
            data={"name": name, "status": "active"},
        )
        return Connected(await self.store.connections.get(record.id))

    async def reconnect(
        self, connection_id: str, *, return_to: str | None = None, binding: FlowBinding | None = None
    ) -> Connected:
        """Start a new authorization (authorization code), or fetch a new token now (other token grants)."""
        connection = await self.store.connections.get(connection_id)
        spec = (await self.store.integrations.get(connection.integration_key)).spec
        plugin = plugin_for(spec.auth)
        self.check_return_to(return_to)
        if plugin.redirects(spec):
            return Connected(connection, await self._start_flow(connection, spec, return_to, binding))
        if plugin.refreshable(spec):
            await self.refresh(connection_id)
            return Connected(await self.store.connections.get(connection_id))
        raise ConnectionStateError(
            f"a {spec.auth.type} connection has nothing to reconnect: update its credentials instead"
        )

    async def step_up(
        self, connection_id: str, rejected_token: str, status: int, www_authenticate: str | None
    ) -> tuple[str, ...] | None:
        """After an upstream answer: a 403 ``insufficient_scope`` marks the connection ``needs_reauth``.

        The scopes the resource server names are added to those the connection wants (the granted
        ones, or those wanted before: a union), so a reconnect (or a ``reconnect`` connect session)
        asks for them all. Only for types that authorize through the user (a redirect), only while the
        rejected token is still the connection's (a re-authorization meanwhile already answered it).
        Returns the scopes now wanted, or None (nothing changed). A malformed or oversized challenge
        changes nothing and is logged. The caller passes the 403 on as it came.
        """
        found = insufficient_scope(status, www_authenticate)
        if found is None:
            return None
        connection = await self.store.connections.get(connection_id)
        spec = (await self.store.integrations.get(connection.integration_key)).spec
        if not plugin_for(spec.auth).redirects(spec):
            return None
        if found.problem is not None:
            logger.warning("connection %s: insufficient_scope answer ignored: %s", connection_id, found.problem)
            return None
        creds = await self.store.credentials.load(connection_id)
        if creds is None or creds.access_token != rejected_token or connection.status not in ("active", "needs_reauth"):
            return None
        before = connection.wanted_scopes or tuple(creds.scopes or ())
        wanted = tuple(dict.fromkeys([*before, *found.scopes]))
        if len(wanted) > MAX_WANTED_SCOPES:
            logger.warning(
                "connection %s: insufficient_scope answer ignored: more than %d scopes wanted together",
                connection_id,
                MAX_WANTED_SCOPES,
            )
            return None
        if connection.status == "needs_reauth" and wanted == connection.wanted_scopes:
            return wanted  # already said
        reason = f"the server asks for scopes the token lacks ({' '.join(found.scopes)}): reconnect to grant them"
        if not await self.store.connections.want_scopes(
            connection_id, wanted, reason=reason, version=connection.version
        ):
            return None  # changed meanwhile (a re-authorization, another step-up): theirs stands
        self.keeper.changed(connection_id)
        await self.store.events.add(
            "connection.reauthorization_needed",
            connection_id=connection_id,
            integration_key=spec.key,
            data={"reason": reason, "scopes": list(wanted)},
        )
        return wanted

    async def takes_entered_credentials(self, connection_id: str) -> bool:
        """Whether the connection's credentials are entered by the user (API token, basic) rather than obtained."""
        connection = await self.store.connections.get(connection_id)
        spec = (await self.store.integrations.get(connection.integration_key)).spec
        return plugin_for(spec.auth).entered(spec)

    async def replace_credentials(self, connection_id: str, credentials: Mapping[str, object]) -> ConnectionRecord:
        """Put new entered credentials (API token; username and password) on a connection, in place (same id)."""
        connection = await self.store.connections.get(connection_id)
        spec = (await self.store.integrations.get(connection.integration_key)).spec
        plugin = plugin_for(spec.auth)
        if not plugin.entered(spec):
            raise ConnectionStateError(f"a {spec.auth.type} connection gets its credentials from the provider")
        entered = plugin.begin(self.context(spec, connection.parameters, inputs=self._check_inputs(spec, credentials)))
        assert isinstance(entered, Entered)  # what `entered` promises
        creds = CredentialRecord(access_token=entered.access_token, inputs=dict(entered.inputs))
        await self.store.credentials.save(connection_id, creds)
        await self.store.connections.set_status(connection_id, "active", refreshed=True)
        self.keeper.changed(connection_id)
        await self.store.events.add(
            "connection.authorized",
            connection_id=connection_id,
            integration_key=spec.key,
            data={"credentials": "replaced"},
        )
        return await self.store.connections.get(connection_id)

    async def edit(
        self,
        connection_id: str,
        *,
        name: str | None = None,
        parameters: Mapping[str, object] | None = None,
        credentials: Mapping[str, object] | None = None,
    ) -> ConnectionRecord:
        """Change a connection in place (same id): rename it, change parameters, replace entered credentials.

        Parameters are merged over the stored ones (a secret one left out stays) and checked exactly
        as on create. Credentials never follow new parameter values silently: an entered token or
        password must be given again with them, and a provider's token is set aside (``needs_reauth``:
        reconnect). Nothing changes when anything is refused.
        """
        connection = await self.store.connections.get(connection_id)
        spec = (await self.store.integrations.get(connection.integration_key)).spec
        plugin = plugin_for(spec.auth)
        problems: list[ErrorItem] = []
        if name is not None and not name.strip():
            problems.append(ErrorItem("name", "is required"))
        values: dict[str, str] | None = None
        if parameters is not None:
            merged = {**connection.parameters, **parameters}
            try:
                values = check_parameter_values(
                    spec, merged, allow_http=self.allow_http, max_length=self.max_parameter_length
                )
            except ParameterError as exc:
                problems.extend(exc.errors)
        changed = values is not None and values != connection.parameters
        if credentials and not plugin.entered(spec):
            problems.append(ErrorItem("credentials", f"a {spec.auth.type} connection gets them from the provider"))
        elif credentials:
            try:
                self._check_inputs(spec, credentials)
            except ParameterError as exc:
                problems.extend(exc.errors)
        elif changed and plugin.entered(spec):
            problems.append(
                ErrorItem("credentials", "give them again with new parameter values (they would go to the new values)")
            )
        if problems:
            raise ParameterError(problems)
        await self.store.connections.edit(
            connection_id, name=name.strip() if name is not None else None, parameters=values if changed else None
        )
        if credentials:
            await self.replace_credentials(connection_id, credentials)
        elif changed and plugin.stores_credentials(spec) and connection.status == "active":
            reason = "its parameters changed: reconnect to authorize with the new values"
            await self.store.connections.set_status(connection_id, "needs_reauth", last_error=reason)
        self.keeper.changed(connection_id)
        fields = [f for f, v in (("name", name), ("parameters", values if changed else None)) if v is not None]
        await self.store.events.add(
            "connection.updated",
            connection_id=connection_id,
            integration_key=spec.key,
            data={"fields": [*fields, *(["credentials"] if credentials else [])]},
        )
        return await self.store.connections.get(connection_id)

    async def callback(self, query: Mapping[str, str], *, browser_binding: str | None = None) -> CallbackResult:
        """Finish an authorization from the provider's redirect.

        The flow (token endpoint, client credentials, PKCE verifier) comes from the server-side
        record found by ``state``; nothing but ``code``, ``iss``, the error and captured fields is
        taken from the query. A flow started from a connect page finishes only in the browser that
        started it (``browser_binding``: the SHA-256 of its binding cookie), else WrongBrowserError.
        """
        state = query.get("state")
        flow = await self.store.flows.consume(state, browser_binding) if state else None
        if flow is None:
            raise CallbackError(
                "this authorization link is unknown, was already used or has expired (10 minutes): start again"
            )
        connection = await self.store.connections.get(flow.connection_id)
        spec = (await self.store.integrations.get(connection.integration_key)).spec
        plugin = plugin_for(spec.auth)
        creds = await self.store.credentials.load(connection.id)
        undiscovered = None
        try:
            spec = await self.resolved(spec, connection.parameters, creds)
        except UpstreamError as exc:
            undiscovered = f"could not prepare the authorization server: {exc}"
        ctx = self.context(spec, connection.parameters, creds, redirect_uri=flow.redirect_uri)
        # Captured fields exist for the token request already (token_url may use them: Lightspeed's domain_prefix).
        captured = callback_fields(spec, query)
        ctx = dataclasses.replace(ctx, credentials={**ctx.credentials, **captured})

        async def fail(message: str, event: str = "connection.authorization_failed") -> CallbackResult:
            status = "error" if connection.status in {"pending", "error"} else connection.status
            await self.store.connections.set_status(
                connection.id, status, last_error=message, expires_at=connection.expires_at, warning=connection.warning
            )
            await self.store.events.add(
                event, connection_id=connection.id, integration_key=spec.key, data={"reason": message}
            )
            return CallbackResult(
                await self.store.connections.get(connection.id), flow.return_to, message, flow.connect_session_id
            )

        if query.get("error"):
            description = scrub(query.get("error_description", ""), _secrets_of(ctx))
            detail = f": {redact(description)[:300]}" if description else ""
            return await fail(f"the provider refused the authorization: {redact(query['error'])[:100]}{detail}")
        if undiscovered is not None:
            return await fail(undiscovered)
        try:
            accepted = plugin.callback(ctx, query, flow.code_verifier)
            tokens = await self._token(ctx, plugin.finish(ctx, accepted))
        except AuthBridgeError as exc:
            # The flow is used up: whatever went wrong (upstream, template, spec) is the connection's error.
            return await fail(str(exc))
        await self.store.credentials.save(connection.id, credentials_from(tokens, inputs=ctx.inputs, extra=captured))
        await self.store.connections.set_status(
            connection.id, "active", expires_at=tokens.expires_at, warning=self._warning(spec, tokens), refreshed=True
        )
        self.keeper.changed(connection.id)
        await self.store.events.add("connection.authorized", connection_id=connection.id, integration_key=spec.key)
        if flow.connect_session_id:
            await self.store.connect_sessions.complete(flow.connect_session_id, connection.id)
        return CallbackResult(
            await self.store.connections.get(connection.id), flow.return_to, connect_session_id=flow.connect_session_id
        )

    async def refresh(self, connection_id: str, *, force: bool = True) -> CredentialRecord:
        """Refresh now (``POST /connections/{id}/refresh``), exactly once even when others ask at the same time."""
        connection = await self.store.connections.get(connection_id)
        spec = (await self.store.integrations.get(connection.integration_key)).spec
        if not plugin_for(spec.auth).refreshable(spec):
            raise ConnectionStateError(f"a {spec.auth.type} connection has no token to refresh")
        creds = await self.store.credentials.load(connection_id)
        return await self.keeper.refresh(connection_id, seen_version=creds.version if creds else 0, force=force)

    async def token(self, connection_id: str) -> FreshToken:
        """A valid access token, refreshed first when it is inside the refresh window.

        Served from ``self.tokens`` (the proxy's rules: until the window, at most a minute, dropped on
        any change) when the broker wired it to the invalidation log; else read every time.
        """
        cached = self.tokens.get(connection_id)
        if cached is not None:
            return cached
        epoch = self.tokens.epoch
        connection, creds = await self.keeper.fresh(connection_id)
        if creds.access_token is None:
            raise ConnectionStateError(f"connection {connection_id} has no access token (its auth type uses none)")
        token = FreshToken(creds.access_token, creds.token_type or "Bearer", creds.expires_at)
        due = None
        if creds.expires_at is not None:
            spec = (await self.store.integrations.get(connection.integration_key)).spec
            lifetime = creds.expires_at - creds.obtained_at if creds.obtained_at else None
            due = creds.expires_at - effective_window(spec.refresh, lifetime)
        self.tokens.put(connection_id, token, integration=connection.integration_key, due=due, epoch=epoch)
        return token

    async def delete(self, connection_id: str) -> DeleteResult:
        """Revoke upstream (when the integration has a revoke URL), then delete locally whatever happened.

        Each token is revoked on its own: a refresh token the endpoint refuses (``unsupported_token_type``,
        a 503, a broken connection) does not keep the access token from being revoked.
        """
        connection = await self.store.connections.get(connection_id)
        spec = (await self.store.integrations.get(connection.integration_key)).spec
        creds = await self.store.credentials.load(connection_id)
        outcomes: list[TokenRevocation] = []
        problem = None
        plugin = plugin_for(spec.auth)
        if creds is not None and plugin.revokes(spec):
            ctx = self.context(spec, connection.parameters, creds)
            secrets = _secrets_of(ctx)
            try:
                ctx = self.context(
                    await self.resolved(spec, connection.parameters, creds), connection.parameters, creds
                )
                requests = plugin.revoke(ctx)
            except AuthBridgeError as exc:
                problem = str(exc)
                requests = []
            for token_type, request in requests:
                outcomes.append(await self._revoke_one(spec, token_type, request, secrets))
            failed = [o for o in outcomes if not o.revoked]
            if failed:
                problem = "; ".join(f"{o.token_type.replace('_', ' ')}: {o.error}" for o in failed)
            if problem:
                logger.warning("revocation failed for connection %s: %s", connection_id, problem)
        revoked = bool(outcomes) and problem is None
        await self.store.connections.delete(connection_id)
        self.keeper.changed(connection_id)
        if revoked:
            await self.store.events.add(
                "connection.revoked", connection_id=connection_id, integration_key=spec.key, data=connection.owner()
            )
        await self.store.events.add(
            "connection.deleted",
            connection_id=connection_id,
            integration_key=spec.key,
            data={
                "revoked": revoked,
                **({"revoke_error": problem} if problem else {}),
                **({"tokens": {o.token_type: o.revoked for o in outcomes}} if outcomes else {}),
                **connection.owner(),
            },
        )
        return DeleteResult(revoked, problem, tuple(outcomes))

    async def _revoke_one(
        self, spec: Integration, token_type: str, request: httpx.Request, secrets: typing.Sequence[str]
    ) -> TokenRevocation:
        """Send one revocation request; its failure is reported, never raised."""
        try:
            response = await self._send(request, integration=spec.key, secrets=secrets)
        except AuthBridgeError as exc:
            return TokenRevocation(token_type, False, str(exc))
        problem = revocation_problem(response)
        if problem is not None:
            shown = _endpoint(request.url, secrets)
            return TokenRevocation(token_type, False, f"{spec.key}: revocation endpoint {shown} {problem}")
        return TokenRevocation(token_type, True)

    async def test(self, connection_id: str) -> TestResult:
        """Run the integration's ``test`` hook or request with the connection's credentials; report the outcome.

        A rejection in ``refresh.on_status`` is refreshed and retried once, as every request is.
        """
        connection, creds = await self.keeper.fresh(connection_id)
        spec = (await self.store.integrations.get(connection.integration_key)).spec
        hook = self._hook(spec, "test")
        if hook is not None:
            ctx = self.context(spec, connection.parameters, creds)
            try:
                outcome = await call_hook(hook, self._hook_context(ctx), integration=spec.key, name="test")
            except UpstreamError as exc:
                return await self._tested(connection_id, spec, TestResult(False, None, str(exc)))
            detail = outcome if isinstance(outcome, str) else f"the test hook answered {bool(outcome)}"
            return await self._tested(connection_id, spec, TestResult(bool(outcome), None, detail))
        if spec.test is None:
            return TestResult(False, None, f"integration {spec.key} declares no test request (add `test:` to its spec)")
        ctx = self.context(spec, connection.parameters, creds)
        secrets = _secrets_of(ctx)
        request = api_request(ctx, spec.test.method, spec.test.path, spec.test.headers)
        try:
            response = await self._send(request, integration=spec.key, secrets=secrets)
            if creds.access_token is not None:
                challenge = response.headers.get("www-authenticate")
                await self.step_up(connection_id, creds.access_token, response.status_code, challenge)
            if creds.access_token is not None and plugin_for(spec.auth).refreshable(spec):
                retry = await self.keeper.after_rejection(
                    connection_id, creds.access_token, response.status_code, response.headers.get("www-authenticate")
                )
                if retry is not None:
                    request = api_request(
                        self.context(spec, connection.parameters, retry),
                        spec.test.method,
                        spec.test.path,
                        spec.test.headers,
                    )
                    secrets = _secrets_of(self.context(spec, connection.parameters, retry))
                    response = await self._send(request, integration=spec.key, secrets=secrets)
        except UpstreamError as exc:
            return await self._tested(connection_id, spec, TestResult(False, None, str(exc)))
        ok = response.status_code in spec.test.expect_status
        expected = " or ".join(str(s) for s in spec.test.expect_status)
        detail = f"{spec.test.method} {_endpoint(request.url, secrets)} answered {response.status_code}" + (
            "" if ok else f", expected {expected}"
        )
        return await self._tested(connection_id, spec, TestResult(ok, response.status_code, detail))

    async def _tested(self, connection_id: str, spec: Integration, result: TestResult) -> TestResult:
        await self.store.events.add(
            "connection.tested",
            connection_id=connection_id,
            integration_key=spec.key,
            data={"ok": result.ok, "status": result.status},
        )
        return result

    async def view(self, connection_id: str) -> tuple[ConnectionRecord, list[str] | None]:
        """A connection and its granted scopes (never a token)."""
        connection = await self.store.connections.get(connection_id)
        creds = await self.store.credentials.load(connection_id)
        return connection, creds.scopes if creds else None
