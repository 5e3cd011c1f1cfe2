"""Event delivery to webhook URLs: signed, retried with backoff, never followed through redirects.

Every event is POSTed to every webhook as JSON::

    {"id": 42, "type": "connection.refreshed", "created_at": "2026-01-01T00:00:00+00:00",
     "connection_id": "3f2a...", "integration": "acme", "data": {}}

with the headers ``AuthBridge-Event-Id``, ``AuthBridge-Event-Type`` and ``AuthBridge-Signature:
t=<unix seconds>,v1=<hex>`` where ``v1`` is HMAC-SHA256, keyed with the webhook's secret (the
``whsec_...`` string `authbridge webhooks add` printed, used as is, UTF-8), over ``f"{t}.{body}"``: the
timestamp, a dot and the raw request body exactly as received. To verify a delivery:

1. split the header on ``,`` into ``key=value`` pairs: ``t`` is the timestamp, each ``v1`` a signature;
2. compute ``hmac.new(secret.encode(), f"{t}.".encode() + raw_body, hashlib.sha256).hexdigest()``;
3. accept if it equals one ``v1`` (compare with ``hmac.compare_digest``) and ``t`` is within 5 minutes
   of your clock (this stops replays of an old delivery).

`verify_signature` does exactly this::

    from authbridge.broker.webhooks import verify_signature
    ok = verify_signature(secret, request.headers["AuthBridge-Signature"], raw_body, now=datetime.now(UTC))

Answer with any 2xx once the event is stored; anything else (a 3xx too: redirects are not followed),
a timeout or a network error is retried with exponential backoff and jitter (``Retry-After`` seconds
on 429 and 503 are honoured), up to ``max_attempts`` attempts. A delivery may arrive more than once
(say, the 2xx was lost): deduplicate on ``AuthBridge-Event-Id``.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
import random
import re
import typing
from datetime import UTC, datetime, timedelta

import anyio
import httpx

from authbridge.errors import AuthBridgeError, OutboundBlockedError
from authbridge.metrics import Metrics
from authbridge.redact import redact
from authbridge.store import ClaimedDelivery, EventRecord, Store
from authbridge.types import Clock, JSONDict, utcnow

__all__ = ["SIGNATURE_HEADER", "WebhookDispatcher", "event_payload", "sign", "verify_signature"]

logger = logging.getLogger("authbridge.webhooks")

SIGNATURE_HEADER = "AuthBridge-Signature"
# Keys whose values are masked whatever they hold. (``code``, ``state`` and ``key``, secret in an OAuth
# query string, are left alone: in event data they name error codes, statuses and integrations.)
_SENSITIVE_KEY = re.compile(r"(?i)(token|secret|password|passwd|authorization|api_?key|assertion|verifier)")


def _scrub(value: typing.Any, key: str | None = None) -> typing.Any:
    """``value`` with anything token-like masked: values under secret-sounding keys, and redact() on strings."""
    if key is not None and _SENSITIVE_KEY.search(key):
        return "***"
    if isinstance(value, dict):
        return {str(k): _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def event_payload(event: EventRecord) -> JSONDict:
    """The public JSON of an event (webhook body and ``GET /events`` item); ``data`` scrubbed defensively."""
    return {
        "id": event.id,
        "type": event.type,
        "created_at": event.created_at.isoformat(),
        "connection_id": event.connection_id,
        "integration": event.integration_key,
        "data": _scrub(event.data),
    }


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``AuthBridge-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str, header: str, body: bytes | str, *, now: datetime | float, tolerance: float = 300
) -> bool:
    """Whether ``header`` signs ``body`` under ``secret`` at a time within ``tolerance`` seconds of ``now``."""
    raw = body.encode() if isinstance(body, str) else body
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret, raw, timestamp).rsplit("v1=", 1)[1]
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def _retry_after(response: httpx.Response, now: datetime) -> timedelta | None:
    """The ``Retry-After`` of a 429 or 503 (seconds or an HTTP date), else None."""
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


class WebhookDispatcher:
    """Sends due webhook deliveries; safe to run on every replica at once (deliveries are leased).

    ```
    dispatcher = WebhookDispatcher(store, http)          # http: the app's guarded AsyncClient
    await dispatcher.run_once()                          # one batch; returns how many were attempted
    stop = anyio.Event()
    task_group.start_soon(dispatcher.run_forever, stop)  # poll every 2 s until stop.set()
    ```

    ``base_delay`` doubles after each failed attempt up to ``max_delay``, with jitter of -50 %..0 %
    so that many failing deliveries do not retry in step. ``timeout`` bounds each request; the
    lease on a claimed delivery outlasts it, so a live worker never loses its delivery to another.
    """

    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        *,
        clock: Clock = utcnow,
        max_attempts: int = 8,
        base_delay: timedelta = timedelta(seconds=10),
        max_delay: timedelta = timedelta(hours=1),
        timeout: float = 10.0,
        batch_size: int = 50,
        concurrency: int = 10,
        jitter: typing.Callable[[], float] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.store = store
        self.http = http
        self.clock = clock
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.batch_size = batch_size
        self.lease = timedelta(seconds=2 * timeout + 30)
        self._limiter = anyio.CapacityLimiter(concurrency)
        # Jitter needs no cryptographic randomness; tests may pass a fixed function.
        self._jitter = jitter or random.Random().random  # noqa: S311

    def backoff(self, attempts: int) -> timedelta:
        """How long to wait after the ``attempts``-th failed attempt (with jitter)."""
        delay = min(self.base_delay * (1 << min(max(attempts - 1, 0), 30)), self.max_delay)
        return delay * (1 - 0.5 * self._jitter())

    async def run_once(self) -> int:
        """Claim the due deliveries (one batch) and attempt each; return how many were attempted."""
        claimed = await self.store.webhooks.claim_due(now=self.clock(), limit=self.batch_size, lease=self.lease)
        async with anyio.create_task_group() as tg:
            for delivery in claimed:
                tg.start_soon(self._deliver, delivery)
        return len(claimed)

    async def run_forever(self, stop: anyio.Event, interval: float = 2.0) -> None:
        """Run batches until ``stop`` is set; a full batch is followed at once by the next one."""
        while not stop.is_set():
            try:
                attempted = await self.run_once()
            except AuthBridgeError as exc:  # the database is down: try again later, do not die
                logger.warning("webhook dispatch failed: %s", exc)
                attempted = 0
            if attempted >= self.batch_size:
                continue
            with anyio.move_on_after(interval):
                await stop.wait()

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        async with self._limiter:
            error, retry_after = await self._send(delivery)
        try:
            await self._record(delivery, error, retry_after)
        except AuthBridgeError as exc:  # the lease runs out and the delivery is tried again
            logger.warning(
                "webhook %s: cannot record the outcome of delivery %s: %s", delivery.webhook_id, delivery.id, exc
            )

    async def _record(self, delivery: ClaimedDelivery, error: str | None, retry_after: timedelta | None) -> None:
        if self.metrics is not None:
            outcome = "failed" if delivery.attempts >= self.max_attempts else "retrying"
            self.metrics.delivered("delivered" if error is None else outcome)
        if error is None:
            await self.store.webhooks.mark_delivered(delivery.id)
            return
        if delivery.attempts >= self.max_attempts:
            logger.warning(
                "webhook %s: giving up on event %s after %d attempts (%s)",
                delivery.webhook_id,
                delivery.event.id,
                delivery.attempts,
                error,
            )
            await self.store.webhooks.mark_failed(delivery.id, error, None)
            return
        delay = self.backoff(delivery.attempts) if retry_after is None else min(retry_after, self.max_delay)
        await self.store.webhooks.mark_failed(delivery.id, error, self.clock() + delay)

    async def _send(self, delivery: ClaimedDelivery) -> tuple[str | None, timedelta | None]:
        """POST one delivery; return (None, None) on a 2xx, else (the error, the Retry-After if any)."""
        event = delivery.event
        body = json.dumps(event_payload(event), separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "AuthBridge-Event-Id": str(event.id),
            "AuthBridge-Event-Type": event.type,
            SIGNATURE_HEADER: sign(delivery.secret, body, int(self.clock().timestamp())),
        }
        try:
            request = self.http.build_request(
                "POST", delivery.url, content=body, headers=headers, timeout=httpx.Timeout(self.timeout)
            )
            # In total, not per read: a receiver trickling its headers would otherwise hold the delivery
            # past its lease (and another worker would send it again).
            with anyio.fail_after(self.timeout):
                # Streamed and closed unread: a receiver's (possibly huge) answer body is never loaded.
                response = await self.http.send(request, stream=True, follow_redirects=False)
                await response.aclose()
        except TimeoutError:
            return f"no answer within {self.timeout:g} s", None
        except (httpx.HTTPError, httpx.InvalidURL, OutboundBlockedError) as exc:
            return redact(f"{type(exc).__name__}: {exc}")[:300], None
        if response.is_success:
            return None, None
        return f"HTTP {response.status_code}", _retry_after(response, self.clock())
