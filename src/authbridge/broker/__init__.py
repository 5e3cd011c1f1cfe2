"""The core every edge calls: integrations, connected accounts, API keys, events, health."""

from __future__ import annotations

import hashlib
import time
import typing

import httpx

from authbridge.auth import plugin_for
from authbridge.broker.audit import AuditLog
from authbridge.broker.cache_sync import EVERYTHING, CacheSync
from authbridge.broker.connect import (
    CallbackResult,
    Connected,
    Connections,
    DeleteResult,
    FlowBinding,
    FreshToken,
    Owner,
    TestResult,
    TokenRevocation,
)
from authbridge.broker.lru import LRU
from authbridge.broker.sessions import ConnectSessions, NewSession, SessionRequest
from authbridge.broker.upstream import UpstreamLimits
from authbridge.broker.webhooks import WebhookDispatcher, event_payload, verify_signature
from authbridge.errors import (
    AuthenticationError,
    ErrorItem,
    IntegrationNotFound,
    ParameterError,
    PermissionDeniedError,
    SpecError,
)
from authbridge.metrics import Metrics
from authbridge.spec import SECRET_MASK, Integration
from authbridge.spec.validate import MAX_PARAMETER_LENGTH
from authbridge.store import (
    ApiKeyRecord,
    ConnectionFilter,
    ConnectionRecord,
    ConnectSessionRecord,
    EventRecord,
    IntegrationRecord,
    Store,
    WebhookRecord,
)
from authbridge.tracing import Tracer
from authbridge.types import Clock, utcnow

__all__ = [
    "SCOPES",
    "ApiKeyRecord",
    "AuditLog",
    "Broker",
    "CacheSync",
    "CallbackResult",
    "ConnectSessionRecord",
    "ConnectSessions",
    "Connected",
    "ConnectionFilter",
    "ConnectionRecord",
    "Connections",
    "DeleteResult",
    "EventRecord",
    "FlowBinding",
    "FreshToken",
    "IntegrationRecord",
    "NewSession",
    "Owner",
    "Policy",
    "SessionRequest",
    "TestResult",
    "TokenRevocation",
    "WebhookDispatcher",
    "WebhookRecord",
    "check_scope",
    "event_payload",
    "verify_signature",
]


#: What an API key may be allowed to do. ``admin`` is everything; the others are what their names say:
#: ``connect`` creates and ends connect sessions only (what a web app's backend needs), ``proxy`` calls
#: APIs through ``/proxy``, ``token`` reads access tokens.
#: Verified API keys remembered at once (least recently used go first).
KEY_CACHE_SIZE = 10_000

SCOPES = ("admin", "connect", "connections:read", "connections:write", "proxy", "token")


def check_scope(key: ApiKeyRecord, scope: str) -> None:
    """PermissionDeniedError (403, naming the scope) unless the key has ``scope`` or ``admin``."""
    if scope not in key.scopes and "admin" not in key.scopes:
        raise PermissionDeniedError(f"this API key lacks the scope {scope!r} (it has: {', '.join(key.scopes)})")


class Policy(typing.NamedTuple):
    """What the server allows, decided by its configuration and handed down as plain values."""

    hook_allowed: typing.Callable[[str], bool] = lambda _reference: False
    allow_http: typing.Callable[[str], bool] = lambda _host: False
    redirect_uri: str = "http://127.0.0.1:8000/oauth/callback"
    return_origin_allowed: typing.Callable[[str], bool] = lambda _origin: False
    #: The longest one refresh may take, all HTTP included; the refresh lease outlives it.
    refresh_deadline: float = 30.0
    #: How long a verified API key is remembered at most (revocations anywhere drop it: see CacheSync).
    key_cache_ttl: float = 30.0
    #: How often each process reads the cache-invalidation log (changes reach every replica's caches
    #: within 3 x this at the latest).
    cache_sync_interval: float = 0.5
    #: Where this server is reached from browsers (connect URLs are made under it).
    public_url: str = "http://127.0.0.1:8000"
    #: The largest answer read from a third party (after decompression), in bytes.
    max_upstream_body: int = 1024 * 1024
    #: Seconds one outbound exchange may take in total (connect, send, read the whole answer).
    http_timeout: float = 10.0
    #: The longest parameter value a connection may have (AUTHBRIDGE_MAX_PARAMETER_LENGTH).
    max_parameter_length: int = MAX_PARAMETER_LENGTH
    #: AuthBridge's client ID metadata document URL (its client id at servers that accept one), or None.
    client_metadata_url: str | None = None


def _hooks(spec: Integration) -> list[tuple[str, str]]:
    hooks = getattr(spec.auth, "hooks", None)
    if hooks is None:
        return []
    return [(f"auth.hooks.{name}", ref) for name, ref in hooks.model_dump().items() if ref]


class Broker:
    """Orchestrates the store (and, as they land, the auth flows) for the API, console and CLI.

    ```
    broker = Broker(store, policy=Policy(redirect_uri=settings.redirect_uri))
    record, created = await broker.save_integration(spec)
    ```
    """

    def __init__(
        self,
        store: Store,
        *,
        http: httpx.AsyncClient | None = None,
        policy: Policy | None = None,
        clock: Clock = utcnow,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or Policy()
        #: Prometheus metrics and OpenTelemetry spans; None when off (the composition root decides).
        self.metrics = metrics
        self.tracer = tracer
        self.clock = clock
        self._keys: LRU[bytes, tuple[float, ApiKeyRecord]] = LRU(KEY_CACHE_SIZE)
        self._keys_generation = store.api_keys.generation
        #: Bumped whenever key cache entries are dropped: a verification that raced a drop is not cached.
        self._keys_epoch = 0
        self.cache_sync = CacheSync(store, interval=self.policy.cache_sync_interval)
        self.cache_sync.listeners.append(self._invalidated)
        self._connections = (
            Connections(
                store,
                http,
                redirect_uri=self.policy.redirect_uri,
                allow_http=self.policy.allow_http,
                return_origin_allowed=self.policy.return_origin_allowed,
                hook_allowed=self.policy.hook_allowed,
                refresh_deadline=self.policy.refresh_deadline,
                limits=UpstreamLimits(max_body=self.policy.max_upstream_body, timeout=self.policy.http_timeout),
                max_parameter_length=self.policy.max_parameter_length,
                client_metadata_url=self.policy.client_metadata_url,
                clock=clock,
                metrics=metrics,
                tracer=tracer,
            )
            if http is not None
            else None
        )
        if self._connections is not None:
            # The token endpoint's cache follows the invalidation log, as the proxy's targets do.
            tokens = self._connections.tokens
            tokens.trusted = self.cache_sync.trusted
            self.cache_sync.listeners.append(tokens.invalidated)
        self._sessions: ConnectSessions | None = None
        #: Token reads and connect-session actions, written in batches off the request path.
        self.audit = AuditLog(store, clock=clock)

    @property
    def sessions(self) -> ConnectSessions:
        """Connect sessions (they need the connection operations, hence the outbound client)."""
        if self._sessions is None:
            self._sessions = ConnectSessions(
                self.store,
                self.connections,
                public_url=self.policy.public_url,
                allow_http=self.policy.allow_http,
                clock=self.clock,
            )
        return self._sessions

    @property
    def connections(self) -> Connections:
        """Connected-account operations (they need the outbound HTTP client the composition root built)."""
        if self._connections is None:
            raise RuntimeError("this Broker was built without an HTTP client; pass http=httpx.AsyncClient(...)")
        return self._connections

    # -- integrations -------------------------------------------------------------------------

    def check_integration(self, spec: Integration) -> None:
        """Server-side rules a spec must meet beyond its own validity (hooks on the allow-list)."""
        errors = [
            ErrorItem(path, f"hook module of {ref!r} is not allowed on this server (AUTHBRIDGE_HOOK_MODULES)")
            for path, ref in _hooks(spec)
            if not self.policy.hook_allowed(ref)
        ]
        if errors:
            raise SpecError(errors)

    async def save_integration(
        self, spec: Integration, *, create: bool = True, update: bool = True, move_secrets: bool = False
    ) -> tuple[IntegrationRecord, bool]:
        """Create or replace an integration after the server-side checks; record an event.

        An update that would send a stored secret to a new host is refused (SpecError, nothing
        changed): the kept client secret must be given again, and the secrets of existing connected
        accounts move only with ``move_secrets``, which only the command line (the server's
        operator) passes.
        """
        self.check_integration(spec)
        record, created = await self.store.integrations.save(
            spec, create=create, update=update, move_secrets=move_secrets
        )
        await self.store.events.add(
            "integration.created" if created else "integration.updated",
            integration_key=spec.key,
            data={"version": record.version},
        )
        return record, created

    async def save_integrations(
        self, specs: typing.Sequence[Integration], *, move_secrets: bool = False
    ) -> list[tuple[IntegrationRecord, bool]]:
        """Save several integrations; all are checked (and every problem reported) before any is written."""
        keys = [s.key for s in specs]
        errors = [
            ErrorItem("key", f"{k!r} appears more than once") for k in sorted({k for k in keys if keys.count(k) > 1})
        ]
        for spec in specs:
            try:
                self.check_integration(spec)
            except SpecError as exc:
                errors.extend(ErrorItem(f"{spec.key}.{e.path}", e.message, e.line) for e in exc.errors)
            masked = [
                n
                for n, v in (("client_secret", spec.client_secret), ("client_private_key", spec.client_private_key))
                if v == SECRET_MASK
            ]
            if masked and not await self._exists(spec.key):
                # The mask means "keep the stored secret": refused here rather than after others were saved.
                for name in masked:
                    errors.append(ErrorItem(f"{spec.key}.auth.{name}", "give the secret itself, not ********"))
            moves = await self.store.integrations.check_save(spec, move_secrets=move_secrets)
            errors.extend(ErrorItem(f"{spec.key}.{e.path}", e.message) for e in moves)
        if errors:
            raise SpecError(errors)
        return [await self.save_integration(spec, move_secrets=move_secrets) for spec in specs]

    async def _exists(self, key: str) -> bool:
        try:
            await self.store.integrations.get(key)
        except IntegrationNotFound:
            return False
        return True

    async def get_integration(self, key: str) -> IntegrationRecord:
        """One integration by key."""
        return await self.store.integrations.get(key)

    async def list_integrations(self) -> list[IntegrationRecord]:
        """Every integration."""
        return await self.store.integrations.list()

    async def delete_integration(self, key: str) -> None:
        """Delete an integration without connected accounts; record an event."""
        await self.store.integrations.delete(key)
        await self.store.events.add("integration.deleted", integration_key=key)

    def redirect_uri_for(self, spec: Integration) -> str | None:
        """The redirect URI to register with the provider, for integrations that need one."""
        if plugin_for(spec.auth).redirects(spec):
            return self.policy.redirect_uri
        return None

    # -- API keys and health ------------------------------------------------------------------

    async def create_api_key(self, name: str, scopes: typing.Sequence[str] = ("admin",)) -> tuple[str, ApiKeyRecord]:
        """A new key with these scopes (each one of SCOPES); the key itself is returned once."""
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            message = f"unknown scope {unknown[0]!r}" if unknown else "give at least one scope"
            raise ParameterError(
                [ErrorItem("scope", f"{message}; scopes are {', '.join(SCOPES)}")], summary="invalid API key request"
            )
        return await self.store.api_keys.create(name, list(dict.fromkeys(scopes)))

    async def authorize(self, api_key: str | None, scope: str) -> ApiKeyRecord:
        """``authenticate``, then PermissionDeniedError (403) unless the key has ``scope`` (or ``admin``)."""
        record = await self.authenticate(api_key)
        check_scope(record, scope)
        return record

    async def authenticate(self, api_key: str | None) -> ApiKeyRecord:
        """The record of a valid API key, or AuthenticationError (which never says what was wrong).

        Valid keys are remembered for ``policy.key_cache_ttl`` seconds (every proxied request
        authenticates) while the cache is in step with the database (``cache_sync``): a revocation in
        this process takes effect at once, one made by any other process within ``cache_sync.max_lag``.
        """
        if not api_key:
            raise AuthenticationError("missing or invalid API key")
        if self._keys_generation != self.store.api_keys.generation:
            self._forget_keys()
            self._keys_generation = self.store.api_keys.generation
        digest = hashlib.sha256(api_key.encode()).digest()
        now = time.monotonic()
        cached = self._keys.get(digest)
        if cached is not None and cached[0] > now and self.cache_sync.trusted(now):
            return cached[1]
        epoch = self._keys_epoch
        record = await self.store.api_keys.verify(api_key)
        if record is None:
            raise AuthenticationError("missing or invalid API key")
        if epoch == self._keys_epoch:  # else a revocation arrived while we read: do not cache what we read
            self._keys[digest] = (now + self.policy.key_cache_ttl, record)
        return record

    def _forget_keys(self, key_id: str | None = None) -> None:
        """Drop one key's cache entries (all when ``key_id`` is None)."""
        self._keys_epoch += 1
        if key_id is None:
            self._keys.clear()
            return
        for digest in [d for d, (_, record) in self._keys.items() if record.id == key_id]:
            del self._keys[digest]

    def _invalidated(self, kind: str, ref: str) -> None:
        """A change logged by any process (CacheSync): drop what this broker caches of it."""
        if kind == "api_key":
            self._forget_keys(ref)
        elif kind == EVERYTHING:
            self._forget_keys()

    async def healthy(self) -> bool:
        """Whether the database answers."""
        return await self.store.ping()
