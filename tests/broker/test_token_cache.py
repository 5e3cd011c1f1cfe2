"""The token cache's rules (the proxy's): until the window, at most the TTL, while trusted; dropped on any change.

The same rules seen through the running app: tests/api/test_token_fast_path.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from authbridge.broker.cache_sync import EVERYTHING
from authbridge.broker.lru import LRU
from authbridge.broker.token_cache import TokenCache
from authbridge.testing import FakeClock


def _cache(clock: FakeClock, *, trusted: bool = True, ttl: float = 60.0, capacity: int = 10) -> TokenCache[str]:
    return TokenCache(clock=clock, trusted=lambda _now: trusted, ttl=ttl, capacity=capacity)


def test_a_value_is_served_until_it_is_due(clock: FakeClock) -> None:
    """Cached until the due time on the broker's clock; from then on, a miss."""
    cache = _cache(clock)
    cache.put("c1", "tok", integration="acme", due=clock() + timedelta(seconds=30), epoch=cache.epoch)
    assert cache.get("c1") == "tok"
    clock.advance(seconds=31)
    assert cache.get("c1") is None


def test_nothing_due_already_or_without_trust_is_served(clock: FakeClock) -> None:
    """A value due at once is not kept; an untrusted cache (the log not read lately) answers nothing."""
    cache = _cache(clock)
    cache.put("c1", "tok", integration="acme", due=clock() - timedelta(seconds=1), epoch=cache.epoch)
    assert len(cache) == 0 and cache.get("c1") is None
    lapsed = _cache(clock, trusted=False)
    lapsed.put("c1", "tok", integration="acme", due=None, epoch=lapsed.epoch)
    assert lapsed.get("c1") is None
    unwired: TokenCache[str] = TokenCache(clock=clock)  # a broker without the log: never trusted
    unwired.put("c1", "tok", integration="acme", due=None, epoch=unwired.epoch)
    assert unwired.get("c1") is None


def test_the_ttl_bounds_a_token_without_expiry(clock: FakeClock) -> None:
    """A TTL of zero keeps nothing: the monotonic deadline is what bounds a token that never expires."""
    cache = _cache(clock, ttl=0.0)
    cache.put("c1", "tok", integration="acme", due=None, epoch=cache.epoch)
    assert cache.get("c1") is None


def test_a_read_that_raced_a_drop_is_not_cached(clock: FakeClock) -> None:
    """The epoch taken before reading the store moved (a drop happened meanwhile): the value is discarded."""
    cache = _cache(clock)
    epoch = cache.epoch
    cache.forget("other")
    cache.put("c1", "stale", integration="acme", due=None, epoch=epoch)
    assert cache.get("c1") is None


def test_invalidations_drop_what_they_touch(clock: FakeClock) -> None:
    """A connection, every connection of an integration, or everything; other kinds touch nothing."""
    cache = _cache(clock)
    for cid, key in (("c1", "acme"), ("c2", "acme"), ("c3", "beta"), ("c4", "beta")):
        cache.put(cid, f"tok-{cid}", integration=key, due=None, epoch=cache.epoch)
    cache.invalidated("api_key", "c3")
    assert len(cache) == 4
    cache.invalidated("connection", "c3")
    assert cache.get("c3") is None and cache.get("c4") == "tok-c4"
    cache.invalidated("integration", "acme")
    assert cache.get("c1") is None and cache.get("c2") is None and cache.get("c4") == "tok-c4"
    cache.invalidated(EVERYTHING, "")
    assert len(cache) == 0


def test_the_cache_is_bounded(clock: FakeClock) -> None:
    """Past its capacity the least recently used entry goes."""
    cache = _cache(clock, capacity=2)
    for cid in ("c1", "c2"):
        cache.put(cid, cid, integration="acme", due=None, epoch=cache.epoch)
    assert cache.get("c1") == "c1"  # c1 is now the most recently used
    cache.put("c3", "c3", integration="acme", due=None, epoch=cache.epoch)
    assert cache.get("c2") is None and cache.get("c1") == "c1" and cache.get("c3") == "c3"


def test_lru_order_and_capacity() -> None:
    """``get`` and setting refresh an entry; a missing key gives the default; capacity must be positive."""
    lru: LRU[str, int] = LRU(2)
    lru["a"], lru["b"] = 1, 2
    assert lru.get("a") == 1
    lru["c"] = 3
    assert list(lru) == ["a", "c"]
    lru["a"] = 10
    lru["d"] = 4
    assert list(lru) == ["a", "d"] and lru.get("zz", 7) == 7
    with pytest.raises(ValueError, match="at least one"):
        LRU(0)
