"""The proxy: ``ANY /proxy/{connection_id}/{path}`` forwarded upstream with the connection's credentials.

The hot path is raw ASGI over aiohttp's client (measured: benchmarks/proxy.py, docs/performance.md).
Per request it does dictionary lookups and header filtering only: API keys (by the broker) and each
connection's target (base URL, headers, query, token) are cached in memory until the token enters its refresh
window (at most a minute). A target is dropped at once when this process refreshes or deletes the
connection, and within ``broker.cache_sync.max_lag`` when any other process does (or changes the
connection's status or its integration): the broker's CacheSync reads the invalidation log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import math
import random
import socket
import time
import typing
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, unquote, urlencode, urljoin, urlsplit

import aiohttp
import httpx
import yarl

from authbridge.auth import AuthContext, AuthPlugin, credential_headers_and_query, plugin_for
from authbridge.auth.lifecycle import effective_window, refresh_on_rejection
from authbridge.auth.placement import base_url
from authbridge.broker import Broker
from authbridge.broker.cache_sync import EVERYTHING
from authbridge.broker.limits import IDEMPOTENT, Limiter, is_limited, provider_wait, retry_delay
from authbridge.broker.lru import LRU
from authbridge.errors import (
    AuthBridgeError,
    AuthenticationError,
    ConnectionStateError,
    NotFoundError,
    OutboundBlockedError,
    RateLimitedError,
    UpstreamError,
)
from authbridge.logs import CONNECTION_ID, INTEGRATION
from authbridge.metrics import Metrics
from authbridge.netguard import GuardedResolver, is_public_address
from authbridge.proxy.headers import caller_key, forward_headers, http_date, response_headers, safe_path
from authbridge.spec import RateLimit, RefreshPolicy
from authbridge.tracing import Tracer
from authbridge.upstream_http import UpstreamClient, UpstreamConnectError, UpstreamResponse

__all__ = ["SKIP_AUTO_HEADERS", "Proxy", "ProxyTimeouts"]

logger = logging.getLogger("authbridge.proxy")

Scope = typing.MutableMapping[str, typing.Any]
Message = typing.MutableMapping[str, typing.Any]
Receive = typing.Callable[[], typing.Awaitable[Message]]
Send = typing.Callable[[Message], typing.Awaitable[None]]

#: Request bodies up to this size are buffered so a rejected request can be replayed once.
REPLAY_LIMIT = 10 * 1024 * 1024
_IDEMPOTENT = IDEMPOTENT
_RETRYABLE = frozenset({429, 502, 503, 504})
_MAX_RETRIES = 5
#: The most ``X-AuthBridge-Max-Wait`` may ask for (it only ever lowers the integration's ``max_wait``).
_MAX_CALLER_WAIT = 600.0
#: Answers up to this size with a Content-Length are read whole and sent in one message.
_SMALL_BODY = 64 * 1024
#: An upstream answer: the lean client's, or aiohttp's (streamed uploads, HEAD, URLs needing encoding).
Answer = UpstreamResponse | aiohttp.ClientResponse
#: aiohttp adds these unless told not to; the caller's own (or none) go upstream. The app's proxy session
#: skips them for every request (``authbridge.app.proxy_session``); another session gets them per request.
SKIP_AUTO_HEADERS = frozenset({"User-Agent", "Accept-Encoding", "Accept", "Content-Type"})


@dataclasses.dataclass(frozen=True)
class ProxyTimeouts:
    """How long the proxy waits for the upstream.

    ```
    ProxyTimeouts(connect=10.0, read=60.0)   # read: between bytes of the answer
    ```
    """

    connect: float = 10.0
    read: float = 60.0


@dataclasses.dataclass(frozen=True)
class _Target:
    # Everything but the policy may carry a credential or a secret parameter: none of it in a repr.
    base: str = dataclasses.field(repr=False)
    headers: dict[str, str] = dataclasses.field(repr=False)
    injected: frozenset[bytes] = dataclasses.field(repr=False)
    query: list[tuple[str, str]] = dataclasses.field(repr=False)
    token: str | None = dataclasses.field(repr=False)
    policy: RefreshPolicy
    good_until: float
    integration: str
    #: A signing auth type's plugin and context: each request is signed as sent (None: fixed credentials).
    signer: tuple[AuthPlugin, AuthContext] | None = dataclasses.field(default=None, repr=False)
    #: The integration's ``rate_limit`` (None: the hot path checks nothing more).
    limits: RateLimit | None = None


@dataclasses.dataclass(frozen=True)
class _Options:
    """What the caller asked of this request with ``X-AuthBridge-*`` headers."""

    retries: int | None = None
    max_wait: float | None = None
    next_url: str | None = None


_NO_OPTIONS = _Options()
_OPTION_HEADERS = frozenset({b"x-authbridge-retries", b"x-authbridge-max-wait", b"x-authbridge-next"})


class _Problem(Exception):
    def __init__(self, status: int, code: str, message: str, side: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.side = status, code, message, side
        self.retry_after = retry_after


def _problem_of(exc: AuthBridgeError) -> _Problem:
    if isinstance(exc, AuthenticationError):
        return _Problem(401, exc.code, exc.message, "authbridge")
    if isinstance(exc, NotFoundError):
        return _Problem(404, exc.code, exc.message, "authbridge")
    if isinstance(exc, ConnectionStateError):
        return _Problem(409, exc.code, exc.message, "authbridge")
    if isinstance(exc, UpstreamError):
        return _Problem(502, exc.code, exc.message, "upstream")
    if isinstance(exc, RateLimitedError):
        return _Problem(429, exc.code, exc.message, "authbridge", retry_after=exc.retry_after)
    return _Problem(exc.status_code if exc.status_code >= 400 else 500, exc.code, exc.message, exc.side)


class Proxy:
    """Forwards requests with credentials in place. Built by the app's lifespan; one per process."""

    def __init__(
        self,
        broker: Broker,
        session: aiohttp.ClientSession,
        *,
        timeouts: ProxyTimeouts = ProxyTimeouts(),
        allow_private: bool = False,
        target_ttl: float = 60.0,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
        max_targets: int = 10_000,
        client: UpstreamClient | None = None,
    ) -> None:
        self.broker = broker
        self.metrics = metrics
        self.tracer = tracer
        self.session = session
        skipped = {name.lower() for name in session.skip_auto_headers}
        #: None when the session skips them already (no per-request set for aiohttp to build).
        self._skip: frozenset[str] | None = (
            None if skipped >= {n.lower() for n in SKIP_AUTO_HEADERS} else SKIP_AUTO_HEADERS
        )
        self.timeout = aiohttp.ClientTimeout(total=None, connect=timeouts.connect, sock_read=timeouts.read)
        #: The lean client for the common request (upstream_http.py); aiohttp (``session``) for the rest.
        self.client = client or UpstreamClient(
            GuardedResolver(allow_private=allow_private), connect_timeout=timeouts.connect, read_timeout=timeouts.read
        )
        self.allow_private = allow_private
        self.target_ttl = target_ttl
        #: The least recently used targets go first past ``max_targets`` (memory stays bounded).
        self._targets: LRU[str, _Target] = LRU(max_targets)
        #: Per-connection slots of integrations with ``rate_limit.max_concurrent`` or ``pace``.
        self.limiter = Limiter()
        #: Bumped on every drop: a target built while one happened is not cached (it may predate the change).
        self._epoch = 0
        #: Targets being built, by (connection, epoch): concurrent requests for one connection share one
        #: read of the database instead of each making its own (a build from an older epoch is not joined).
        self._building: dict[tuple[str, int], asyncio.Task[_Target]] = {}
        broker.connections.keeper.listeners.append(self.forget)
        broker.cache_sync.listeners.append(self._invalidated)

    def forget(self, connection_id: str) -> None:
        """Drop a connection's cached target (its token was refreshed, or it was deleted)."""
        self._epoch += 1
        self._targets.pop(connection_id, None)

    def _invalidated(self, kind: str, ref: str) -> None:
        """A change logged by any process: drop the targets it touches."""
        if kind == "connection":
            self.forget(ref)
        elif kind == "integration":
            self._epoch += 1
            for connection_id in [c for c, t in self._targets.items() if t.integration == ref]:
                del self._targets[connection_id]
        elif kind == EVERYTHING:
            self._epoch += 1
            self._targets.clear()

    # -- per request ------------------------------------------------------------------------------

    async def _target(self, connection_id: str) -> _Target:
        cached = self._targets.get(connection_id)
        now = time.monotonic()
        if cached is not None and cached.good_until > now and self.broker.cache_sync.trusted(now):
            return cached
        slot = (connection_id, self._epoch)
        building = self._building.get(slot)
        if building is None:
            building = asyncio.ensure_future(self._build(connection_id))
            self._building[slot] = building
            building.add_done_callback(lambda task: self._built(slot, task))
        # Shielded: one caller going away does not cancel the read the others wait for.
        return await asyncio.shield(building)

    def _built(self, slot: tuple[str, int], task: asyncio.Task[_Target]) -> None:
        if self._building.get(slot) is task:
            del self._building[slot]
        if not task.cancelled():
            task.exception()  # retrieved: every caller that waited has seen it already

    async def _build(self, connection_id: str) -> _Target:
        """Read a connection's target (fresh credentials first) and cache it unless a drop happened meanwhile."""
        epoch = self._epoch
        connection, creds = await self.broker.connections.keeper.fresh(connection_id)
        spec = (await self.broker.get_integration(connection.integration_key)).spec
        ctx = self.broker.connections.context(spec, connection.parameters, creds)
        headers, query = credential_headers_and_query(ctx)
        plugin = plugin_for(spec.auth)
        ttl = self.target_ttl
        if creds.expires_at is not None:
            lifetime = creds.expires_at - creds.obtained_at if creds.obtained_at else None
            due = creds.expires_at - effective_window(spec.refresh, lifetime)
            ttl = max(0.0, min(ttl, (due - self.broker.clock()).total_seconds()))
        base = base_url(ctx).rstrip("/")
        self._check_host(base)  # once per target: the base URL fixes the host
        target = _Target(
            base=base,
            headers=headers,
            injected=frozenset(name.lower().encode("latin-1") for name in headers),
            query=list(query.items()),
            token=creds.access_token,
            policy=spec.refresh,
            good_until=time.monotonic() + ttl,
            integration=spec.key,
            signer=(plugin, ctx) if plugin.signs(spec) else None,
            limits=spec.rate_limit,
        )
        if epoch == self._epoch:
            self._targets[connection_id] = target
        return target

    def _check_host(self, url: str) -> None:
        """IP literals skip the resolver, so they are checked here (host names: GuardedResolver)."""
        if self.allow_private:
            return
        host = urlsplit(url).hostname or ""
        try:
            address = str(ipaddress.ip_address(host))
        except ValueError:
            try:  # 127.1, 2130706433, 0x7f000001: the legacy IPv4 forms resolvers still read as addresses
                address = socket.inet_ntoa(socket.inet_aton(host))
            except OSError:
                return
        if not is_public_address(address):
            raise OutboundBlockedError(
                f"refusing to connect to {host}: a loopback, private or link-local address; "
                "set AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS=true to allow calls to private networks"
            )

    async def handle(self, scope: Scope, receive: Receive, send: Send, request_id: bytes | None = None) -> None:
        """Serve one ``/proxy/{connection_id}/{path}`` request.

        With ``request_id``, the answer carries it as ``X-Request-ID`` (an upstream's own goes back as
        ``X-Upstream-Request-ID``).
        """
        if self.metrics is None and self.tracer is None:
            await self._serve(scope, receive, send, request_id)
            return
        start = time.perf_counter()
        method: str = scope["method"]
        if self.tracer is None:
            status, origin = await self._serve(scope, receive, send, request_id)
        else:
            with self.tracer.server("proxy", scope["headers"], {"http.request.method": method}) as span:
                status, origin = await self._serve(scope, receive, send, request_id)
                span.set_attribute("http.response.status_code", status)
                span.set_attribute("authbridge.integration", INTEGRATION.get() or "")
                span.set_attribute("authbridge.answered_by", origin)
                if status >= 500:
                    self.tracer.failed(span, f"{origin} {status}")
        if self.metrics is not None:
            self.metrics.proxied(INTEGRATION.get() or "_none", method, status, origin, time.perf_counter() - start)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, request_id: bytes | None) -> tuple[int, str]:
        """Answer the request; return the status sent and who produced the answer (``upstream`` or ``authbridge``)."""
        try:
            return await self._handle(scope, receive, send, request_id), "upstream"
        except _Problem as problem:
            await _error(send, problem, request_id)
            return problem.status, "authbridge"
        except AuthBridgeError as exc:
            mapped = _problem_of(exc)
            await _error(send, mapped, request_id)
            return mapped.status, "authbridge"

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: bytes | None) -> int:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        key, key_in_authorization = caller_key(headers)
        await self.broker.authorize(key, "proxy")  # cached in memory by the broker
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        _, _, rest = raw_path.decode("latin-1").partition("/proxy/")
        connection_id, _, path = rest.partition("/")
        safe = safe_path(path)
        if not connection_id or safe is None:
            raise _Problem(400, "invalid_path", "the path must stay inside the integration's base URL", "authbridge")
        CONNECTION_ID.set(connection_id)  # for this request's log lines (its own task: nothing to reset)
        target = await self._target(connection_id)
        INTEGRATION.set(target.integration)
        method: str = scope["method"]
        options = _options(headers, method)
        body, replayable = await _read_body(receive) if _has_body(headers) else (b"", True)
        exchange = _Exchange(
            connection_id, safe, scope.get("query_string", b""), method, options, body, replayable, request_id
        )
        rule = target.limits
        if rule is not None and self.limiter.limits(rule):
            async with self.limiter.slot(connection_id, rule):
                return await self._exchange(exchange, target, headers, key_in_authorization, receive, send)
        return await self._exchange(exchange, target, headers, key_in_authorization, receive, send)

    async def _step_up(self, connection_id: str, token: str, challenge: str | None) -> None:
        """A 403 ``insufficient_scope``: the connection wants more scopes (``needs_reauth``); the 403 is relayed.

        ``step_up`` reads the challenge before anything else: a plain 403 costs no database read.
        """
        try:
            wanted = await self.broker.connections.step_up(connection_id, token, 403, challenge)
        except AuthBridgeError as exc:
            logger.warning("connection %s: recording an insufficient_scope answer failed: %s", connection_id, exc)
            return
        if wanted is not None:
            self.forget(connection_id)

    async def _exchange(
        self,
        ex: _Exchange,
        target: _Target,
        headers: list[tuple[bytes, bytes]],
        key_in_authorization: bool,
        receive: Receive,
        send: Send,
    ) -> int:
        """Send the request upstream (again after a refresh or a wait the rules allow), relay the answer: its status."""
        method, body, replayable = ex.method, ex.body, ex.replayable
        retries = ex.options.retries or 0
        attempt = 0
        rejected = False
        limited = 0
        waited = 0.0
        while True:
            url = _url(target, ex.path, ex.query_string)
            if ex.options.next_url is not None:
                url = _next_url(target, url, ex.options.next_url)
            out_headers = forward_headers(
                headers,
                drop_authorization=key_in_authorization,
                injected=target.headers,
                injected_names=target.injected,
            )
            content = body if replayable else _stream(body, receive)
            if self.tracer is None:
                response = await self._attempt(target, method, url, out_headers, content)
            else:
                with self.tracer.client(f"upstream {method}", {"http.request.method": method}) as span:
                    self.tracer.inject(out_headers)  # before signing: a signature may cover every header
                    response = await self._attempt(target, method, url, out_headers, content)
                    span.set_attribute("http.response.status_code", response.status)
            status = response.status
            if status == 403 and target.token is not None:
                try:
                    await self._step_up(ex.connection_id, target.token, response.headers.get("WWW-Authenticate"))
                except BaseException:
                    response.release()
                    raise
            if (
                not rejected
                and replayable
                and target.token is not None
                and refresh_on_rejection(target.policy, status, response.headers.get("WWW-Authenticate"))
            ):
                rejected = True
                try:
                    fresh = await self.broker.connections.keeper.after_rejection(
                        ex.connection_id, target.token, status, response.headers.get("WWW-Authenticate")
                    )
                except BaseException:
                    response.release()
                    raise
                if fresh is not None:
                    response.release()
                    self.forget(ex.connection_id)
                    target = await self._target(ex.connection_id)
                    continue
            rule = target.limits
            if rule is not None and is_limited(rule, status, response.headers.get):
                delay, hint = await _rate_limit_delay(rule, response, ex, limited, waited)
                if delay is not None:
                    limited += 1
                    waited += delay
                    response.release()
                    await asyncio.sleep(delay)
                    continue
                await _relay(response, send, ex.request_id, hint)
                return status
            if status in _RETRYABLE and attempt < retries and replayable:
                attempt += 1
                delay = _retry_delay(attempt, response.headers.get("Retry-After"))
                response.release()
                await asyncio.sleep(delay)
                continue
            await _relay(response, send, ex.request_id)
            return status

    async def _attempt(
        self, target: _Target, method: str, url: str, headers: dict[str, str], body: bytes | AsyncIterator[bytes]
    ) -> Answer:
        """Send one attempt upstream (signed first when the auth type signs), timed for the metrics."""
        if target.signer is not None:
            if not isinstance(body, bytes):
                raise _Problem(
                    413,
                    "body_too_large",
                    f"a signed request's body must be at most {REPLAY_LIMIT} bytes (it is signed as a whole)",
                    "authbridge",
                )
            send_to: str | yarl.URL
            send_to, headers = _signed(target.signer, method, url, headers, body)
        else:
            send_to = url
        if self.metrics is None:
            return await self._send(method, send_to, headers, body)
        start = time.perf_counter()
        try:
            return await self._send(method, send_to, headers, body)
        finally:
            self.metrics.upstream(target.integration, time.perf_counter() - start)

    async def _send(
        self, method: str, url: str | yarl.URL, headers: dict[str, str], body: bytes | AsyncIterator[bytes]
    ) -> Answer:
        try:
            written = str(url)  # a signed URL as signed: the lean client sends it as written
            if isinstance(body, bytes) and self.client.usable(method, written, body):
                return await self.client.request(method, written, headers, body)
            return await self.session.request(
                method,
                url,
                headers=headers,
                data=body if body else None,
                allow_redirects=False,
                timeout=self.timeout,
                skip_auto_headers=self._skip,
            )
        except OutboundBlockedError:
            raise
        except TimeoutError:
            raise _Problem(504, "upstream_timeout", f"{_origin(url)} did not answer in time", "upstream") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, OutboundBlockedError):
                raise exc.os_error from None
            raise _Problem(502, "upstream_unreachable", f"cannot reach {_origin(url)}", "upstream") from None
        except UpstreamConnectError:
            raise _Problem(502, "upstream_unreachable", f"cannot reach {_origin(url)}", "upstream") from None
        except aiohttp.ClientError as exc:
            raise _Problem(
                502, "upstream_unreachable", f"{_origin(url)} failed: {type(exc).__name__}", "upstream"
            ) from None


def _origin(url: str | yarl.URL) -> str:
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}"


def _url(target: _Target, path: str, query_string: bytes) -> str:
    url = f"{target.base}/{path}" if path else target.base  # /proxy/{id}/ is the base URL itself
    if not target.query:
        return f"{url}?{query_string.decode('latin-1')}" if query_string else url
    injected = {name for name, _ in target.query}
    caller = [(k, v) for k, v in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True) if k not in injected]
    return f"{url}?{urlencode(caller + target.query)}"


def _signed(
    signer: tuple[AuthPlugin, AuthContext], method: str, url: str, headers: dict[str, str], body: bytes
) -> tuple[yarl.URL, dict[str, str]]:
    """The URL and headers of one attempt, signed by the connection's auth type over what is sent.

    The URL goes to aiohttp as ``encoded``: yarl would otherwise re-quote the path and query it
    was given (``%7E`` to ``~``, a space to ``%20``), and the upstream would check another string
    than the one signed. The Host header is the one httpx computed and the plugin signed.
    """
    plugin, ctx = signer
    request = plugin.sign(ctx, httpx.Request(method, url, headers=headers, content=body))
    signed = dict(request.headers.multi_items())  # one pass (a multi-valued header: joined by the caller already)
    signed.pop("content-length", None)  # each client writes the body's own (aiohttp none for an empty one)
    return yarl.URL(str(request.url), encoded=True), signed


class _Exchange:
    """One proxied request as received: where it goes and what it carries (built per request: slotted)."""

    __slots__ = ("body", "connection_id", "method", "options", "path", "query_string", "replayable", "request_id")

    def __init__(
        self,
        connection_id: str,
        path: str,
        query_string: bytes,
        method: str,
        options: _Options,
        body: bytes,
        replayable: bool,
        request_id: bytes | None,
    ) -> None:
        self.connection_id, self.path, self.query_string, self.method = connection_id, path, query_string, method
        self.options, self.body, self.replayable, self.request_id = options, body, replayable, request_id

    def __repr__(self) -> str:  # never the body: it may carry anything
        return f"_Exchange({self.method} {self.connection_id}/{self.path})"


def _options(headers: list[tuple[bytes, bytes]], method: str) -> _Options:
    """The caller's ``X-AuthBridge-Retries``, ``-Max-Wait`` and ``-Next`` (one pass; most requests have none)."""
    found: dict[str, typing.Any] | None = None
    for name, value in headers:
        if name not in _OPTION_HEADERS:
            continue
        found = found if found is not None else {}
        if name == b"x-authbridge-retries":
            if method not in _IDEMPOTENT:  # never replayed: the value is not even read (as before)
                found["retries"] = 0
                continue
            try:
                found["retries"] = max(0, min(int(value), _MAX_RETRIES))
            except ValueError:
                raise _Problem(
                    400, "invalid_retries", f"X-AuthBridge-Retries takes 0 to {_MAX_RETRIES}", "authbridge"
                ) from None
        elif name == b"x-authbridge-max-wait":
            try:
                max_wait = float(value)
            except ValueError:
                max_wait = -1.0
            if not 0 <= max_wait <= _MAX_CALLER_WAIT:
                raise _Problem(
                    400,
                    "invalid_max_wait",
                    f"X-AuthBridge-Max-Wait takes 0 to {_MAX_CALLER_WAIT:g} seconds (0: never wait)",
                    "authbridge",
                )
            found["max_wait"] = max_wait
        elif name == b"x-authbridge-next":
            found["next_url"] = value.decode("latin-1").strip()
    return _Options(**found) if found is not None else _NO_OPTIONS


def _inside(url: str, base: str) -> bool:
    """Whether ``url`` is on ``base``'s origin and under its path, segment by segment (decoded, no dot segments)."""
    got, want = urlsplit(url), urlsplit(base)
    if (got.scheme.lower(), got.netloc.lower()) != (want.scheme.lower(), want.netloc.lower()):
        return False
    segments = [unquote(part) for part in got.path.split("/")]
    if any(part in (".", "..") for part in segments) or "\\" in got.path:
        return False
    prefix = [unquote(part) for part in want.path.rstrip("/").split("/")]
    return segments[: len(prefix)] == prefix


def _next_url(target: _Target, current: str, link: str) -> str:
    """The upstream's next-page link, resolved against the request's URL; refused outside the base URL.

    The connection's injected query parameters replace any of the same name the link carries.
    """
    if not link or any(ord(c) < 0x21 or ord(c) == 0x7F for c in link):
        raise _Problem(400, "invalid_next_url", "X-AuthBridge-Next must be a URL without spaces", "authbridge")
    url = urljoin(current, link)
    if not _inside(url, target.base):
        raise _Problem(
            400,
            "next_url_outside_base",
            f"refusing to follow a next-page link to {_origin(url)}{urlsplit(url).path}: it is outside the "
            "integration's base URL, and the connection's credentials go nowhere else",
            "authbridge",
        )
    if not target.query:
        return url
    base, _, query = url.partition("?")
    injected = {name for name, _ in target.query}
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in injected]
    return f"{base}?{urlencode(kept + target.query)}"


async def _rate_limit_delay(
    rule: RateLimit, response: Answer, ex: _Exchange, limited: int, waited: float
) -> tuple[float | None, list[tuple[bytes, bytes]]]:
    """(seconds to wait before retrying, or None) and the headers to add when the answer goes to the caller.

    Only idempotent, replayable requests are retried; the total wait stays within ``max_wait`` (or the
    caller's smaller ``X-AuthBridge-Max-Wait``). An answer given up on gets a ``Retry-After`` when the
    provider said when (in a reset header) but sent none.
    """
    body: bytes | None = None
    if any(source.body is not None for source in rule.wait_from):
        length = response.content_length
        if length is not None and length <= _SMALL_BODY:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                body = await response.read()
    wait = provider_wait(rule, response.headers.get, body, time.time())
    hint = [] if wait is None or "Retry-After" in response.headers else [(b"retry-after", b"%d" % math.ceil(wait))]
    if not ex.replayable or ex.method not in _IDEMPOTENT:
        return None, hint
    budget = rule.max_wait.total_seconds()
    if ex.options.max_wait is not None:
        budget = min(budget, ex.options.max_wait)
    retries = ex.options.retries if ex.options.retries is not None else rule.max_retries
    return retry_delay(limited + 1, waited, wait, budget, retries), hint


def _retry_delay(attempt: int, retry_after: str | None) -> float:
    delay: float = min(0.1 * 2.0 ** (attempt - 1), 5.0) * (0.5 + random.random() / 2)  # noqa: S311 - jitter
    if retry_after and retry_after.strip().isdigit():
        delay = max(delay, min(float(retry_after), 30.0))
    return delay


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request announces a body (RFC 9112 §6.3: Content-Length or Transfer-Encoding)."""
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """Buffer the request body up to REPLAY_LIMIT: (body, True); beyond, (what was read, False)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Problem(499, "client_disconnected", "the caller went away", "authbridge")
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
            size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > REPLAY_LIMIT:
            return b"".join(chunks), False


async def _stream(head: bytes, receive: Receive) -> AsyncIterator[bytes]:
    """The buffered start of a large body, then the rest as it arrives (not replayable)."""
    yield head
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False) or message["type"] == "http.disconnect":
            return


async def _relay(
    response: Answer,
    send: Send,
    request_id: bytes | None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Stream the upstream's answer back without buffering it (a small one with a length goes in one piece)."""
    try:
        headers = response_headers(response.raw_headers, request_id)
        start = {
            "type": "http.response.start",
            "status": response.status,
            "headers": headers + extra if extra else headers,
        }
        length = response.content_length
        if length is not None and length <= _SMALL_BODY:
            try:
                body = await response.read()
            except (aiohttp.ClientError, TimeoutError):
                raise _Problem(502, "upstream_failed", "the upstream's answer broke off", "upstream") from None
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send(start)
        try:
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Headers are sent. Ending the body normally would pass a truncated answer off as complete (a
            # chunked one has no length to check); returning without ending it makes the server drop the
            # connection, so the caller's read fails as the upstream's did.
            logger.warning("upstream answer cut short: %s", type(exc).__name__)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        response.release()


async def _error(send: Send, problem: _Problem, request_id: bytes | None = None) -> None:
    body = json.dumps({"error": {"code": problem.code, "message": problem.message, "side": problem.side}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"date", http_date()),
    ]
    if problem.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if problem.retry_after is not None:
        headers.append((b"retry-after", b"%d" % max(1, math.ceil(problem.retry_after))))
    if request_id is not None:
        headers.append((b"x-request-id", request_id))
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
