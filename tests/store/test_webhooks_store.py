"""Webhooks and their delivery queue in the store, both backends.

The dispatcher's side is tests/broker/test_webhooks.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import anyio
import pytest
from sqlalchemy import select

from authbridge.errors import ConfigError, CryptoError, NotFoundError
from authbridge.store import ClaimedDelivery, Store
from authbridge.store.crypto import aad_for
from authbridge.store.models import WebhookRow
from authbridge.testing import FakeClock


async def test_add_list_remove(store: Store) -> None:
    """A webhook is added with a one-time whsec_ secret, listed without it, and removed."""
    record, secret = await store.webhooks.add("https://hooks.example.com/authbridge")
    assert secret.startswith("whsec_") and len(secret) > 40
    assert secret not in repr(record)
    listed = await store.webhooks.list()
    assert [(w.id, w.url, w.pending, w.delivered, w.failed) for w in listed] == [
        (record.id, "https://hooks.example.com/authbridge", 0, 0, 0)
    ]
    await store.webhooks.remove(record.id)
    assert await store.webhooks.list() == []
    with pytest.raises(NotFoundError, match="no webhook with id"):
        await store.webhooks.remove(record.id)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "example.com/hook", "https://", "javascript:alert(1)", "https://u:p@example.com/", ""],
)
async def test_bad_urls_are_refused(store: Store, url: str) -> None:
    """Only absolute http(s) URLs with a host and no userinfo are accepted."""
    with pytest.raises(ConfigError, match=r"^the webhook URL m"):
        await store.webhooks.add(url)
    assert await store.webhooks.list() == []


async def test_secret_is_encrypted_at_rest(store: Store) -> None:
    """The stored secret is ciphertext bound to its row: it decrypts only with the webhook's own AAD."""
    record, secret = await store.webhooks.add("https://hooks.example.com/a")
    other, _ = await store.webhooks.add("https://hooks.example.com/b")
    async with store.ctx.session() as session:
        stored = await session.scalar(select(WebhookRow.secret).where(WebhookRow.id == record.id))
    assert stored is not None and stored.startswith("v1.k1.") and secret not in stored
    assert store.ctx.keyring.decrypt_str(stored, aad=aad_for("webhooks", record.id, "secret")) == secret
    with pytest.raises(CryptoError, match="wrong key or the ciphertext was moved or altered"):
        store.ctx.keyring.decrypt_str(stored, aad=aad_for("webhooks", other.id, "secret"))


async def test_event_enqueues_one_delivery_per_active_webhook(store: Store) -> None:
    """Each event gets one pending delivery per webhook existing when it is stored; removed ones get none."""
    before = await store.events.add("integration.created", integration_key="acme")
    first, _ = await store.webhooks.add("https://hooks.example.com/1")
    second, _ = await store.webhooks.add("https://hooks.example.com/2")
    gone, _ = await store.webhooks.add("https://hooks.example.com/3")
    await store.webhooks.remove(gone.id)
    event = await store.events.add("connection.created", connection_id="c" * 32, integration_key="acme")
    assert await store.webhooks.deliveries(event_id=before.id) == []
    deliveries = await store.webhooks.deliveries(event_id=event.id)
    assert sorted(d.webhook_id for d in deliveries) == sorted([first.id, second.id])
    assert all((d.attempts, d.delivered_at, d.failed_at) == (0, None, None) for d in deliveries)
    assert all(d.next_attempt_at == event.created_at for d in deliveries)
    assert [(w.pending, w.delivered) for w in await store.webhooks.list()] == [(1, 0), (1, 0)]


async def test_claim_returns_what_is_needed_to_send(store: Store) -> None:
    """A claimed delivery carries the URL, the decrypted secret and the event, and counts an attempt."""
    hook, secret = await store.webhooks.add("https://hooks.example.com/1")
    event = await store.events.add("connection.refreshed", connection_id="c" * 32, data={"reason": "window"})
    [claimed] = await store.webhooks.claim_due(limit=10)
    assert (claimed.webhook_id, claimed.url, claimed.secret, claimed.attempts) == (hook.id, hook.url, secret, 1)
    assert claimed.event == event
    assert secret not in repr(claimed)
    assert await store.webhooks.claim_due(limit=10) == []  # leased


async def test_claim_is_exclusive(store: Store) -> None:
    """Concurrent claimers never get the same delivery, and together they get every one."""
    await store.webhooks.add("https://hooks.example.com/1")
    await store.webhooks.add("https://hooks.example.com/2")
    for i in range(15):
        await store.events.add("connection.refreshed", data={"n": i})
    batches = await asyncio.gather(*(store.webhooks.claim_due(limit=4) for _ in range(10)))
    ids = [d.id for batch in batches for d in batch]
    assert len(ids) == len(set(ids)) == 30


async def test_lease_expires_on_the_database_clock(store: Store) -> None:
    """A delivery claimed by a worker that died is claimed again once its lease has passed."""
    await store.webhooks.add("https://hooks.example.com/1")
    await store.events.add("connection.created")
    [first] = await store.webhooks.claim_due(lease=timedelta(seconds=2))
    assert await store.webhooks.claim_due() == []  # leased (2 s is ample margin for this one call)
    again = await _claim_when_free(store)
    assert (again.id, again.attempts) == (first.id, 2)


async def _claim_when_free(store: Store) -> ClaimedDelivery:
    """Claim until the one pending delivery comes back (its lease ran out on the database's clock)."""
    with anyio.fail_after(30):
        while not (claimed := await store.webhooks.claim_due()):
            await anyio.sleep(0.1)
    [delivery] = claimed
    return delivery


async def test_mark_failed_delivered_and_given_up(store: Store, clock: FakeClock) -> None:
    """A failed delivery waits for next_attempt_at; delivered and given-up ones are never claimed again."""
    start = clock.now
    hook, _ = await store.webhooks.add("https://hooks.example.com/1")
    await store.events.add("connection.created")
    await store.events.add("connection.deleted")
    one, two = await store.webhooks.claim_due()
    await store.webhooks.mark_failed(one.id, "HTTP 500", clock() + timedelta(seconds=30))
    await store.webhooks.mark_failed(two.id, "HTTP 410", None)
    assert await store.webhooks.claim_due() == []
    clock.advance(seconds=29)
    assert await store.webhooks.claim_due() == []
    clock.advance(seconds=1)
    [retried] = await store.webhooks.claim_due()
    assert (retried.id, retried.attempts) == (one.id, 2)
    await store.webhooks.mark_delivered(retried.id)
    clock.advance(days=1)
    assert await store.webhooks.claim_due() == []
    by_id = {d.id: d for d in await store.webhooks.deliveries(webhook_id=hook.id)}
    assert (by_id[one.id].delivered_at, by_id[one.id].last_error) == (start + timedelta(seconds=30), None)
    assert (by_id[two.id].failed_at, by_id[two.id].last_error) == (start, "HTTP 410")
    [listed] = await store.webhooks.list()
    assert (listed.pending, listed.delivered, listed.failed) == (0, 1, 1)
