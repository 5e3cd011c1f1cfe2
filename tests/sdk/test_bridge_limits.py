"""The Bridge under ``rate_limit`` and ``pagination``, against the limiting loopback provider.

The proxy's side of the same rules: ``tests/proxy/test_rate_limits.py`` and ``tests/proxy/test_paginate.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from authbridge import Bridge
from authbridge.errors import PaginationError, RateLimitedError
from authbridge.spec import Integration
from tests.proxy.limits_upstream import LimitsProvider as Provider
from tests.proxy.limits_upstream import run_limits_provider
from tests.sdk.helpers import open_bridge

TOKEN = "bridge-limits-token-0123456789"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with run_limits_provider() as running:
        yield running


@pytest.fixture
async def bridge(tmp_path: Path, provider: Provider) -> AsyncIterator[Bridge]:
    provider.state.reset()
    provider.evil.reset()
    async with open_bridge(tmp_path) as opened:
        yield opened


async def _connect(bridge: Bridge, provider: Provider, key: str, **blocks: object) -> str:
    spec = Integration.model_validate(
        {
            "key": key,
            "name": key,
            "auth": {"type": "api_token"},
            "token": {"in": "header", "name": "X-Api-Key", "template": "{token}"},
            "request": {"base_url": f"{provider.url}/v1"},
            **blocks,
        }
    )
    await bridge.broker.save_integration(spec)
    created = await bridge.connections.create(
        integration_key=key, name="T", parameters={}, credentials={"token": TOKEN}
    )
    return created.connection.id


async def test_waits_and_retries_idempotent_requests(bridge: Bridge, provider: Provider) -> None:
    """A 429 then a 503 with waits are retried for a GET; a POST's 429 comes back as it came."""
    cid = await _connect(bridge, provider, "brl", rate_limit={"retry_on": [429, 503]})
    provider.state.queue = [(429, {"Retry-After": "0"}, b"{}"), (503, {"Retry-After": "0"}, b"{}")]
    base = await bridge.base_url(cid)
    async with httpx.AsyncClient(auth=bridge.auth(cid), base_url=base) as api:
        got = await api.get("/limited")
        provider.state.queue = [(429, {"Retry-After": "0"}, b"{}")]
        posted = await api.post("/limited", json={"a": 1})
    assert got.status_code == 200
    assert [r.status_code for r in got.history] == [429, 503]
    assert posted.status_code == 429
    assert provider.state.hits("/limited") == 4


async def test_a_wait_in_the_body_and_a_huge_one(bridge: Bridge, provider: Provider) -> None:
    """A wait read from the body is taken; one past ``max_wait`` is not (the 429 goes to the caller)."""
    rule = {"wait_from": [{"body": "retry_after"}, {"header": "Retry-After"}], "max_wait": "2s"}
    cid = await _connect(bridge, provider, "brlbody", rate_limit=rule)
    provider.state.queue = [(429, {}, b'{"retry_after": 0}'), (429, {"Retry-After": "86400000"}, b"{}")]
    async with httpx.AsyncClient(auth=bridge.auth(cid)) as api:
        response = await api.get(f"{provider.url}/v1/limited")
    assert response.status_code == 429
    assert provider.state.hits("/limited") == 2


async def test_max_concurrent_in_the_bridge(bridge: Bridge, provider: Provider) -> None:
    """Six parallel requests with ``max_concurrent: 2``: the provider never sees more than two at once."""
    cid = await _connect(bridge, provider, "brlconc", rate_limit={"max_concurrent": 2, "queue_timeout": "60s"})
    async with httpx.AsyncClient(auth=bridge.auth(cid)) as api:
        answers = await asyncio.gather(*(api.get(f"{provider.url}/v1/slow") for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    assert provider.state.max_in_flight == 2


async def test_pacing_in_the_bridge(bridge: Bridge, provider: Provider) -> None:
    """``pace`` with no queueing: the second request at once is refused with RateLimitedError."""
    rule = {"pace": {"requests": 1, "per": "1m"}, "queue_timeout": 0}
    cid = await _connect(bridge, provider, "brlpace", rate_limit=rule)
    async with httpx.AsyncClient(auth=bridge.auth(cid)) as api:
        assert (await api.get(f"{provider.url}/v1/limited")).status_code == 200
        with pytest.raises(RateLimitedError, match="paced at 1 requests per 60s") as caught:
            await api.get(f"{provider.url}/v1/limited")
    assert caught.value.retry_after > 0
    assert provider.state.hits("/limited") == 1


async def test_bridge_paginates(bridge: Bridge, provider: Provider) -> None:
    """``bridge.paginate`` follows Link headers and cursors, with the connection's credentials on each page."""
    cid = await _connect(bridge, provider, "brlpage", pagination={"type": "link", "next_header": "Link"})
    assert [item async for item in bridge.paginate(cid, "/link")] == [{"n": i} for i in range(5)]
    rule = {"type": "cursor", "cursor_param": "cursor", "next_cursor": "meta.next", "items": "data"}
    cid2 = await _connect(bridge, provider, "brlcursor", pagination=rule)
    assert [i["id"] async for i in bridge.paginate(cid2, "cursor", params={"limit": 4})] == list(range(7))
    assert {s["key"] for s in provider.state.seen} == {TOKEN}


async def test_bridge_refuses_a_link_elsewhere(bridge: Bridge, provider: Provider) -> None:
    """A next link to another host is refused before anything is sent there; a loop and no rule fail clearly."""
    cid = await _connect(bridge, provider, "brlevil", pagination={"type": "link", "next_header": "Link"})
    with pytest.raises(PaginationError, match="outside the integration's base URL"):
        [item async for item in bridge.paginate(cid, "link-evil")]
    assert provider.evil.seen == []
    rule = {"type": "cursor", "cursor_param": "cursor", "next_cursor": "meta.next", "items": "data"}
    loop = await _connect(bridge, provider, "brlloop", pagination=rule)
    with pytest.raises(PaginationError, match="same cursor twice"):
        [item async for item in bridge.paginate(loop, "cursor-loop")]
    bare = await _connect(bridge, provider, "brlbare")
    with pytest.raises(PaginationError, match="declares no pagination"):
        [item async for item in bridge.paginate(bare, "cursor")]
