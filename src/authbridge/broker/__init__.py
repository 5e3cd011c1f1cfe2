"""The core every edge calls: integrations, connected accounts, API keys, events, health."""

from __future__ import annotations

import hashlib
import time
import typing

import httpx

from authbridge.broker.connect import CallbackResult, Connected, Connections, DeleteResult, FreshToken, TestResult
from authbridge.broker.webhooks import WebhookDispatcher, event_payload, verify_signature
from authbridge.errors import AuthenticationError, ErrorItem, IntegrationNotFound, SpecError
from authbridge.spec import SECRET_MASK, Integration, OAuth2Auth
from authbridge.spec.validate import MAX_PARAMETER_LENGTH
from authbridge.store import ApiKeyRecord, ConnectionRecord, EventRecord, IntegrationRecord, Store, WebhookRecord
from authbridge.types import Clock, utcnow

__all__ = [
    "ApiKeyRecord",
    "Broker",
    "CallbackResult",
    "Connected",
    "ConnectionRecord",
    "Connections",
    "DeleteResult",
    "EventRecord",
    "FreshToken",
    "IntegrationRecord",
    "Policy",
    "TestResult",
    "WebhookDispatcher",
    "WebhookRecord",
    "event_payload",
    "verify_signature",
]


class Policy(typing.NamedTuple):
    """What the server allows, decided by its configuration and handed down as plain values."""

    hook_allowed: typing.Callable[[str], bool] = lambda _reference: False
    allow_http: typing.Callable[[str], bool] = lambda _host: False
    redirect_uri: str = "http://127.0.0.1:8000/oauth/callback"
    return_origin_allowed: typing.Callable[[str], bool] = lambda _origin: False
    #: The longest one refresh may take, all HTTP included; the refresh lease outlives it.
    refresh_deadline: float = 30.0
    #: How long a verified API key is remembered (revocations elsewhere take effect within this).
    key_cache_ttl: float = 30.0
    #: The longest parameter value a connection may have (AUTHBRIDGE_MAX_PARAMETER_LENGTH).
    max_parameter_length: int = MAX_PARAMETER_LENGTH


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
    ) -> None:
        self.store = store
        self.policy = policy or Policy()
        self.clock = clock
        self._keys: dict[bytes, tuple[float, ApiKeyRecord]] = {}
        self._keys_generation = store.api_keys.generation
        self._connections = (
            Connections(
                store,
                http,
                redirect_uri=self.policy.redirect_uri,
                allow_http=self.policy.allow_http,
                return_origin_allowed=self.policy.return_origin_allowed,
                hook_allowed=self.policy.hook_allowed,
                refresh_deadline=self.policy.refresh_deadline,
                max_parameter_length=self.policy.max_parameter_length,
                clock=clock,
            )
            if http is not None
            else None
        )

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
        self, spec: Integration, *, create: bool = True, update: bool = True
    ) -> tuple[IntegrationRecord, bool]:
        """Create or replace an integration after the server-side checks; record an event."""
        self.check_integration(spec)
        record, created = await self.store.integrations.save(spec, create=create, update=update)
        await self.store.events.add(
            "integration.created" if created else "integration.updated",
            integration_key=spec.key,
            data={"version": record.version},
        )
        return record, created

    async def save_integrations(self, specs: typing.Sequence[Integration]) -> list[tuple[IntegrationRecord, bool]]:
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
            if spec.client_secret == SECRET_MASK and not await self._exists(spec.key):
                # The mask means "keep the stored secret": refused here rather than after others were saved.
                errors.append(ErrorItem(f"{spec.key}.auth.client_secret", "give the secret itself, not ********"))
        if errors:
            raise SpecError(errors)
        return [await self.save_integration(spec) for spec in specs]

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
        if isinstance(spec.auth, OAuth2Auth) and spec.auth.grant_type == "authorization_code":
            return self.policy.redirect_uri
        return None

    # -- API keys and health ------------------------------------------------------------------

    async def authenticate(self, api_key: str | None) -> ApiKeyRecord:
        """The record of a valid API key, or AuthenticationError (which never says what was wrong).

        Valid keys are remembered for ``policy.key_cache_ttl`` seconds (every proxied request
        authenticates). A revocation in this process takes effect at once; one made by another
        process (``authbridge api-keys revoke``) within that time.
        """
        if not api_key:
            raise AuthenticationError("missing or invalid API key")
        if self._keys_generation != self.store.api_keys.generation:
            self._keys.clear()
            self._keys_generation = self.store.api_keys.generation
        digest = hashlib.sha256(api_key.encode()).digest()
        now = time.monotonic()
        cached = self._keys.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self.store.api_keys.verify(api_key)
        if record is None:
            raise AuthenticationError("missing or invalid API key")
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[digest] = (now + self.policy.key_cache_ttl, record)
        return record

    async def healthy(self) -> bool:
        """Whether the database answers."""
        return await self.store.ping()
