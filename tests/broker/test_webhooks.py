"""The webhook dispatcher against a real loopback receiver, both backends.

The queue it drains is tested in tests/store/test_webhooks_store.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import threading
import typing
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import httpx
import pytest

from authbridge.app import http_client
from authbridge.broker import WebhookDispatcher, verify_signature
from authbridge.broker.webhooks import event_payload, sign
from authbridge.config import Settings
from authbridge.store import EventRecord, Store
from authbridge.testing import FakeClock
from tests.servers.bad_upstream import run_bad_upstream


@dataclasses.dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A loopback HTTP server that records every POST and answers from a script (200 once it runs out)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: list[tuple[int, dict[str, str]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    status, headers = receiver._script.pop(0) if receiver._script else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: typing.Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def answer(self, *responses: int | tuple[int, dict[str, str]]) -> None:
        """Answer the next requests with these statuses (and headers), in order."""
        with self._lock:
            self._script.extend(r if isinstance(r, tuple) else (r, {}) for r in responses)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running loopback receiver, stopped after the test."""
    rec = Receiver()
    thread = threading.Thread(target=rec.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.server.shutdown()
        rec.server.server_close()
        thread.join()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The production outbound client (SSRF guard on, private networks allowed for the loopback receiver)."""
    async with http_client(Settings.from_env({"AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true"})) as client:
        yield client


def _dispatcher(store: Store, http: httpx.AsyncClient, clock: FakeClock, **options: typing.Any) -> WebhookDispatcher:
    return WebhookDispatcher(store, http, clock=clock, jitter=lambda: 0.0, **options)


async def test_delivery_is_signed_and_verifiable(
    store: Store, http: httpx.AsyncClient, clock: FakeClock, receiver: Receiver
) -> None:
    """A delivery's signature verifies; a tampered body, a wrong secret or an old timestamp does not."""
    _, secret = await store.webhooks.add(receiver.url)
    event = await store.events.add(
        "connection.created", connection_id="c" * 32, integration_key="acme", data={"name": "DEV"}
    )
    assert await _dispatcher(store, http, clock).run_once() == 1
    [request] = receiver.requests
    assert request.path == "/hooks"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authbridge-event-id"] == str(event.id)
    assert request.headers["authbridge-event-type"] == "connection.created"
    assert json.loads(request.body) == {
        "id": event.id,
        "type": "connection.created",
        "created_at": clock.now.isoformat(),
        "connection_id": "c" * 32,
        "integration": "acme",
        "data": {"name": "DEV"},
    }
    header = request.headers["authbridge-signature"]
    assert header.startswith(f"t={int(clock.now.timestamp())},v1=")
    assert verify_signature(secret, header, request.body, now=clock.now)
    assert verify_signature(secret, header, request.body.decode(), now=clock.now + timedelta(seconds=299))
    assert not verify_signature(secret, header, request.body.replace(b"DEV", b"QA!"), now=clock.now)
    assert not verify_signature(secret + "x", header, request.body, now=clock.now)
    assert not verify_signature(secret, header, request.body, now=clock.now + timedelta(seconds=301))
    assert not verify_signature(secret, header, request.body, now=clock.now - timedelta(minutes=6))
    assert not verify_signature(secret, header.split(",v1=")[0], request.body, now=clock.now)
    assert not verify_signature(secret, "garbage", request.body, now=clock.now)
    [delivery] = await store.webhooks.deliveries(event_id=event.id)
    assert (delivery.delivered_at, delivery.attempts) == (clock.now, 1)


async def test_signature_is_the_documented_hmac(
    store: Store, http: httpx.AsyncClient, clock: FakeClock, receiver: Receiver
) -> None:
    """A receiver following the documented recipe with nothing but ``hmac`` accepts a delivery: the signature is
    HMAC-SHA256 with the secret over ``{t}.{raw body}``, hex, and ``t`` is the time it was sent."""
    _, secret = await store.webhooks.add(receiver.url)
    await store.events.add("connection.refreshed", connection_id="d" * 32, integration_key="acme")
    assert await _dispatcher(store, http, clock).run_once() == 1
    [request] = receiver.requests
    pairs = [part.split("=", 1) for part in request.headers["authbridge-signature"].split(",")]
    assert [name for name, _ in pairs] == ["t", "v1"]
    timestamp, signature = pairs[0][1], pairs[1][1]
    assert int(timestamp) == int(clock.now.timestamp())
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    forged = hmac.new(b"not-the-secret", timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(signature, forged)


def test_verify_signature_accepts_any_matching_v1() -> None:
    """A header with several v1 signatures verifies when one matches (secret rotation on the sender's side)."""
    body = b'{"id":1}'
    good = sign("whsec_new", body, 1_700_000_000)
    header = good.replace(",v1=", ",v1=" + "0" * 64 + ",v1=")
    now = datetime.fromtimestamp(1_700_000_100, tz=UTC)
    assert verify_signature("whsec_new", header, body, now=now)
    assert verify_signature("whsec_new", header, body, now=1_700_000_100.0)
    assert not verify_signature("whsec_old", header, body, now=now)


async def test_failure_then_success_is_retried_and_delivered_once(
    store: Store, http: httpx.AsyncClient, clock: FakeClock, receiver: Receiver
) -> None:
    """A 500 is retried after the backoff, and the following 200 ends it: two requests, one delivery."""
    receiver.answer(500, 200)
    await store.webhooks.add(receiver.url)
    event = await store.events.add("connection.refreshed", connection_id="c" * 32)
    dispatcher = _dispatcher(store, http, clock, base_delay=timedelta(seconds=10))
    assert await dispatcher.run_once() == 1
    [pending] = await store.webhooks.deliveries(event_id=event.id)
    assert (pending.attempts, pending.last_error, pending.delivered_at) == (1, "HTTP 500", None)
    assert pending.next_attempt_at == clock.now + timedelta(seconds=10)
    assert await dispatcher.run_once() == 0  # not due yet
    clock.advance(seconds=10)
    assert await dispatcher.run_once() == 1
    clock.advance(hours=2)
    assert await dispatcher.run_once() == 0
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body
    [done] = await store.webhooks.deliveries(event_id=event.id)
    assert (done.attempts, done.delivered_at, done.last_error) == (2, clock.now - timedelta(hours=2), None)


async def test_always_failing_is_given_up_after_max_attempts(
    store: Store, http: httpx.AsyncClient, clock: FakeClock, receiver: Receiver
) -> None:
    """A receiver that always fails gets max_attempts requests, with doubling delays, then the delivery fails."""
    receiver.answer(*[502] * 10)
    await store.webhooks.add(receiver.url)
    event = await store.events.add("connection.reauthorization_needed")
    dispatcher = _dispatcher(store, http, clock, max_attempts=4, base_delay=timedelta(seconds=10))
    delays = []
    for _ in range(4):
        assert await dispatcher.run_once() == 1
        [delivery] = await store.webhooks.deliveries(event_id=event.id)
        if delivery.failed_at is None:
            delays.append(delivery.next_attempt_at - clock.now)
            clock.advance(hours=1)
    assert delays == [timedelta(seconds=10), timedelta(seconds=20), timedelta(seconds=40)]
    assert (delivery.attempts, delivery.failed_at, delivery.last_error) == (4, clock.now, "HTTP 502")
    clock.advance(days=1)
    assert await dispatcher.run_once() == 0
    assert len(receiver.requests) == 4


async def test_backoff_has_jitter_and_a_ceiling(store: Store, http: httpx.AsyncClient, clock: FakeClock) -> None:
    """Delays double from base_delay, stop at max_delay, and jitter takes up to half off."""
    dispatcher = WebhookDispatcher(
        store, http, clock=clock, base_delay=timedelta(seconds=10), max_delay=timedelta(minutes=1), jitter=lambda: 1.0
    )
    assert [dispatcher.backoff(n) for n in (1, 2, 3, 4, 40)] == [
        timedelta(seconds=5),
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(seconds=30),
        timedelta(seconds=30),
    ]
    real = WebhookDispatcher(store, http, clock=clock)
    assert all(timedelta(seconds=5) <= real.backoff(1) <= timedelta(seconds=10) for _ in range(50))


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(
    store: Store, http: httpx.AsyncClient, clock: FakeClock, receiver: Receiver, status: int
) -> None:
    """A 429 or 503 with Retry-After: 120 is tried again after 120 seconds, not after the backoff."""
    receiver.answer((status, {"Retry-After": "120"}))
    await store.webhooks.add(receiver.url)
    event = await store.events.add("connection.refresh_failed", data={"permanent": False})
    dispatcher = _dispatcher(store, http, clock, base_delay=timedelta(seconds=10))
    assert await dispatcher.run_once() == 1
    [delivery] = await store.webhooks.deliveries(event_id=event.id)
    assert delivery.next_attempt_at == clock.now + timedelta(seconds=120)
    clock.advance(seconds=119)
    assert await dispatcher.run_once() == 0
    clock.advance(seconds=1)
    assert await dispatcher.run_once() == 1
    assert len(receiver.requests) == 2


async def test_retry_after_as_a_date_and_capped(
    store: Store, http: httpx.AsyncClient, clock: FakeClock, receiver: Receiver
) -> None:
    """Retry-After may be an HTTP date, and never pushes a retry beyond max_delay."""
    receiver.answer(
        (503, {"Retry-After": "Thu, 01 Jan 2026 00:05:00 GMT"}),
        (429, {"Retry-After": "86400"}),
    )
    await store.webhooks.add(receiver.url)
    event = await store.events.add("connection.created")
    dispatcher = _dispatcher(store, http, clock, max_delay=timedelta(hours=1))
    assert clock.now == datetime(2026, 1, 1, tzinfo=UTC)
    await dispatcher.run_once()
    [delivery] = await store.webhooks.deliveries(event_id=event.id)
    assert delivery.next_attempt_at == clock.now + timedelta(minutes=5)
    clock.advance(minutes=5)
    await dispatcher.run_once()
    [delivery] = await store.webhooks.deliveries(event_id=event.id)
    assert delivery.next_attempt_at == clock.now + timedelta(hours=1)


async def test_payload_never_contains_a_token(
    store: Store, http: httpx.AsyncClient, clock: FakeClock, receiver: Receiver
) -> None:
    """Token-bearing event data (which callers must never store) is masked in the body all the same."""
    await store.webhooks.add(receiver.url)
    await store.events.add(
        "connection.refreshed",
        connection_id="c" * 32,
        integration_key="acme",
        data={
            "access_token": "at-SECRET-1",
            "nested": {"refresh_token": "rt-SECRET-2", "list": ["Bearer bearer-SECRET-3"]},
            "reason": 'upstream said {"id_token": "it-SECRET-4"} for token=qs-SECRET-5',
            "client_secret": "cs-SECRET-6",
            "status": 200,
        },
    )
    await _dispatcher(store, http, clock).run_once()
    [request] = receiver.requests
    assert b"SECRET" not in request.body
    data = json.loads(request.body)["data"]
    assert data["access_token"] == data["client_secret"] == data["nested"]["refresh_token"] == "***"
    assert data["nested"]["list"] == ["Bearer ***"]
    assert data["status"] == 200


async def test_redirects_are_not_followed(
    store: Store, clock: FakeClock, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    """A 3xx is a failure to retry, even with a client that would follow redirects."""
    receiver.answer((302, {"Location": receiver.url + "/elsewhere"}))
    await store.webhooks.add(receiver.url)
    event = await store.events.add("connection.created")
    async with httpx.AsyncClient(follow_redirects=True) as following:
        assert await _dispatcher(store, following, clock).run_once() == 1
    assert [r.path for r in receiver.requests] == ["/hooks"]
    [delivery] = await store.webhooks.deliveries(event_id=event.id)
    assert (delivery.last_error, delivery.delivered_at) == ("HTTP 302", None)


async def test_network_errors_and_the_ssrf_guard_are_retried(store: Store, clock: FakeClock) -> None:
    """A refused connection, and a loopback URL the SSRF guard blocks, are failures retried later."""
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()
    await store.webhooks.add(f"http://127.0.0.1:{port}/hooks")
    event = await store.events.add("connection.created")
    async with http_client(Settings.from_env({"AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true"})) as open_client:
        await _dispatcher(store, open_client, clock).run_once()
    [delivery] = await store.webhooks.deliveries(event_id=event.id)
    assert delivery.last_error is not None and delivery.last_error.startswith("ConnectError")
    clock.advance(hours=1)
    async with http_client(Settings.from_env({})) as guarded:
        await _dispatcher(store, guarded, clock).run_once()
    [delivery] = await store.webhooks.deliveries(event_id=event.id)
    assert delivery.last_error is not None and delivery.last_error.startswith("OutboundBlockedError")
    assert (delivery.attempts, delivery.delivered_at, delivery.failed_at) == (2, None, None)


async def test_every_webhook_gets_every_event(
    store: Store, http: httpx.AsyncClient, clock: FakeClock, receiver: Receiver
) -> None:
    """Two webhooks each receive each event, signed under their own secret."""
    _, first = await store.webhooks.add(receiver.url + "/a")
    _, second = await store.webhooks.add(receiver.url + "/b")
    for kind in ("connection.created", "connection.refreshed", "connection.deleted"):
        await store.events.add(kind)
    assert await _dispatcher(store, http, clock).run_once() == 6
    by_path: dict[str, list[str]] = {}
    for request in receiver.requests:
        secret = first if request.path.endswith("/a") else second
        assert verify_signature(secret, request.headers["authbridge-signature"], request.body, now=clock.now)
        by_path.setdefault(request.path, []).append(request.headers["authbridge-event-type"])
    assert {path: sorted(kinds) for path, kinds in by_path.items()} == {
        "/hooks/a": ["connection.created", "connection.deleted", "connection.refreshed"],
        "/hooks/b": ["connection.created", "connection.deleted", "connection.refreshed"],
    }


async def test_run_forever_delivers_and_stops(
    store: Store, http: httpx.AsyncClient, clock: FakeClock, receiver: Receiver
) -> None:
    """run_forever polls until its stop event is set, delivering what arrives in between."""
    await store.webhooks.add(receiver.url)
    dispatcher = WebhookDispatcher(store, http, clock=clock)
    stop = anyio.Event()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(dispatcher.run_forever, stop, 0.05)
            await store.events.add("connection.created")
            while not receiver.requests:
                await anyio.sleep(0.02)
            stop.set()
    assert len(receiver.requests) == 1


def test_event_payload_shape() -> None:
    """The body has exactly the documented fields."""
    record = EventRecord(7, "connection.revoked", "c" * 32, "acme", {"revoked": True}, datetime(2026, 1, 1, tzinfo=UTC))
    assert event_payload(record) == {
        "id": 7,
        "type": "connection.revoked",
        "created_at": "2026-01-01T00:00:00+00:00",
        "connection_id": "c" * 32,
        "integration": "acme",
        "data": {"revoked": True},
    }


async def test_a_receiver_trickling_its_answer_is_cut_off_in_total(store: Store, clock: FakeClock) -> None:
    """A receiver sending its status line one byte a second fails at the timeout in total, not per read."""
    with run_bad_upstream() as receiver:
        receiver.mode("trickle-head")
        await store.webhooks.add(f"{receiver.base_url}/hooks")
        event = await store.events.add("connection.created")
        async with http_client(Settings.from_env({"AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true"})) as open_client:
            with anyio.fail_after(60):  # a safety net for the test run, not a measurement
                assert await _dispatcher(store, open_client, clock, timeout=1.0).run_once() == 1
    [delivery] = await store.webhooks.deliveries(event_id=event.id)
    assert (delivery.last_error, delivery.delivered_at) == ("no answer within 1 s", None)


async def test_retry_after_without_a_zone_or_unreadable(
    store: Store, http: httpx.AsyncClient, clock: FakeClock, receiver: Receiver
) -> None:
    """An HTTP date without a zone is read as UTC; an unreadable Retry-After falls back to the backoff."""
    receiver.answer((503, {"Retry-After": "Thu, 01 Jan 2026 00:05:00"}), (503, {"Retry-After": "later, maybe"}))
    await store.webhooks.add(receiver.url)
    event = await store.events.add("connection.created")
    dispatcher = _dispatcher(store, http, clock, base_delay=timedelta(seconds=10))
    assert await dispatcher.run_once() == 1
    [delivery] = await store.webhooks.deliveries(event_id=event.id)
    assert delivery.next_attempt_at == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    clock.advance(minutes=5)
    assert await dispatcher.run_once() == 1
    [delivery] = await store.webhooks.deliveries(event_id=event.id)
    assert delivery.next_attempt_at == clock.now + dispatcher.backoff(2)


def test_max_attempts_must_be_positive(store: Store, http: httpx.AsyncClient, clock: FakeClock) -> None:
    """A dispatcher that would never try is refused when built."""
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        _dispatcher(store, http, clock, max_attempts=0)


async def test_a_full_batch_is_followed_at_once_by_the_next(
    store: Store, http: httpx.AsyncClient, clock: FakeClock, receiver: Receiver
) -> None:
    """With a batch of one and two events pending, run_forever sends both without waiting its hour-long interval."""
    await store.webhooks.add(receiver.url)
    await store.events.add("connection.created")
    await store.events.add("connection.deleted")
    dispatcher = _dispatcher(store, http, clock, batch_size=1)
    stop = anyio.Event()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(dispatcher.run_forever, stop, 3600.0)
            while len(receiver.requests) < 2:
                await anyio.sleep(0.02)
            stop.set()
    assert sorted(json.loads(r.body)["type"] for r in receiver.requests) == ["connection.created", "connection.deleted"]


async def test_deliveries_are_counted_by_outcome_and_the_backlog_read(
    store: Store, http: httpx.AsyncClient, clock: FakeClock, receiver: Receiver
) -> None:
    """Metrics: a 500 counts ``retrying``, the last allowed failure ``failed``, a 2xx ``delivered``; the backlog
    (neither delivered nor given up) is counted by one query. End to end: tests/proxy/test_metrics.py."""
    from prometheus_client.parser import text_string_to_metric_families

    from authbridge.metrics import Metrics

    metrics = Metrics()
    receiver.answer(500, 500)
    await store.webhooks.add(receiver.url)
    await store.events.add("connection.refreshed", connection_id="c" * 32)
    await store.events.add("connection.created", connection_id="d" * 32)
    dispatcher = _dispatcher(store, http, clock, max_attempts=1, base_delay=timedelta(seconds=10), metrics=metrics)
    assert await store.webhooks.backlog() == 2
    assert await dispatcher.run_once() == 2  # two 500s: one attempt allowed, so both are given up
    receiver.answer(200)
    await store.events.add("connection.deleted", connection_id="e" * 32)
    again = _dispatcher(store, http, clock, max_attempts=3, metrics=metrics)
    assert await again.run_once() == 1
    assert await store.webhooks.backlog() == 0
    receiver.answer(503)
    await store.events.add("connection.deleted", connection_id="f" * 32)
    assert await again.run_once() == 1
    assert await store.webhooks.backlog() == 1
    metrics.set_state(await store.connections.count_by_status(), await store.webhooks.backlog())
    found = {
        (s.name, s.labels.get("outcome")): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    assert found[("authbridge_webhook_deliveries_total", "failed")] == 2
    assert found[("authbridge_webhook_deliveries_total", "delivered")] == 1
    assert found[("authbridge_webhook_deliveries_total", "retrying")] == 1
    assert found[("authbridge_webhook_backlog", None)] == 1
