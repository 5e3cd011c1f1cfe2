"""Reading a provider's wait and bounding retries; per-connection slots and pacing.

Through the running proxy: ``tests/proxy/test_rate_limits.py``; in the Bridge: ``tests/sdk/test_bridge_limits.py``.
"""

from __future__ import annotations

import asyncio
import typing
from email.utils import formatdate

import pytest
from pydantic import ValidationError

from authbridge.broker.limits import Limiter, is_limited, provider_wait, retry_delay
from authbridge.errors import RateLimitedError
from authbridge.spec import RateLimit

NOW = 1_700_000_000.0


def _wait(source: dict[str, str], value: str | None, body: bytes | None = None) -> float | None:
    rule = RateLimit.model_validate({"wait_from": [source]})
    return provider_wait(rule, lambda name: value if name == source.get("header") else None, body, NOW)


@pytest.mark.parametrize(
    ("source", "value", "expected"),
    [
        ({"header": "Retry-After"}, "30", 30.0),
        ({"header": "Retry-After"}, " 2.5 ", 2.5),
        ({"header": "Retry-After"}, formatdate(NOW + 90, usegmt=True), 90.0),
        ({"header": "Retry-After"}, "-7", 0.0),
        ({"header": "Retry-After"}, "99999999999", 86400.0),
        ({"header": "Retry-After"}, "soon", None),
        ({"header": "Retry-After"}, "inf", None),
        ({"header": "Retry-After", "format": "http_date"}, formatdate(NOW - 5, usegmt=True), 0.0),
        ({"header": "Retry-After", "format": "http_date"}, "Tue, 15 Nov 1994 08:12:31 -0000", None),
        ({"header": "Retry-After", "format": "http_date"}, "12", None),
        ({"header": "X-Reset", "format": "milliseconds"}, "1500", 1.5),
        ({"header": "X-Reset", "format": "unix"}, str(int(NOW) + 12), 12.0),
        ({"header": "X-Reset", "format": "unix"}, "yesterday", None),
        ({"header": "X-Reset", "format": "unix_ms"}, str(int(NOW * 1000) + 500), 0.5),
        ({"header": "X-Reset"}, None, None),
    ],
)
def test_reading_a_wait(source: dict[str, str], value: str | None, expected: float | None) -> None:
    """Each format, clamped to [0, a day]; unreadable values are None."""
    assert _wait(source, value) == expected


def test_a_wait_in_the_body() -> None:
    """A body path: numbers and numeric text count; booleans, objects, non-JSON and absent paths do not."""
    source = {"body": "error.retry_after"}
    assert _wait(source, None, b'{"error": {"retry_after": 3}}') == 3.0
    assert _wait(source, None, b'{"error": {"retry_after": "4"}}') == 4.0
    for body in (b'{"error": {"retry_after": true}}', b'{"error": {}}', b'{"error": 5}', b"<html>", b"", None):
        assert _wait(source, None, body) is None


def test_retry_delay_bounds() -> None:
    """A retry is taken while within the count and the total budget; backoff with jitter when nothing is known."""
    assert retry_delay(1, 0.0, 2.0, budget=5.0, retries=3) == 2.0
    assert retry_delay(4, 0.0, 0.0, budget=5.0, retries=3) is None
    assert retry_delay(2, 4.0, 2.0, budget=5.0, retries=3) is None
    backoff = retry_delay(2, 0.0, None, budget=60.0, retries=3)
    assert backoff is not None and 1.0 <= backoff <= 2.0


def test_rate_limit_fields_are_checked() -> None:
    """Durations within 0s-10m, a pace with a positive interval, at least one slot."""
    with pytest.raises(ValidationError, match="between 0s and 10m"):
        RateLimit.model_validate({"max_wait": "1h"})
    with pytest.raises(ValidationError, match="more than 0s"):
        RateLimit.model_validate({"pace": {"requests": 1, "per": 0}})
    with pytest.raises(ValidationError):
        RateLimit.model_validate({"max_concurrent": 0})
    assert RateLimit.model_validate({"retry_on": [429, 429, 503]}).retry_on == [429, 503]


async def test_slots_queue_then_refuse() -> None:
    """Two slots: a third caller waits for one; with none freed in time it gets RateLimitedError."""
    limiter = Limiter()
    rule = RateLimit.model_validate({"max_concurrent": 2, "queue_timeout": "50ms"})
    assert limiter.limits(rule) and not limiter.limits(RateLimit()) and not limiter.limits(None)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot("c1", rule):
            entered.set()
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await entered.wait()
    await asyncio.sleep(0)
    with pytest.raises(RateLimitedError, match="already has 2 requests in flight") as caught:
        async with limiter.slot("c1", rule):
            pass
    assert caught.value.retry_after == 1.0
    async with limiter.slot("c2", rule):  # another connection has its own slots
        pass
    release.set()
    await asyncio.gather(*holders)
    async with limiter.slot("c1", rule):
        pass


async def test_pacing_spaces_requests() -> None:
    """``pace`` hands out instants one interval apart; a changed rule starts afresh."""
    now = [100.0]
    limiter = Limiter(clock=lambda: now[0])
    rule = RateLimit.model_validate({"pace": {"requests": 1000, "per": "1s"}, "queue_timeout": "1s"})
    async with limiter.slot("c", rule):
        pass
    async with limiter.slot("c", rule):  # waits one millisecond (the clock stands still: sleeps 0.001)
        pass
    strict = RateLimit.model_validate({"pace": {"requests": 1, "per": "1m"}, "queue_timeout": "1s"})
    async with limiter.slot("c", strict):
        pass
    with pytest.raises(RateLimitedError, match="paced at 1 requests per 60s"):
        async with limiter.slot("c", strict):
            pass


def test_which_answers_are_rate_limits() -> None:
    """429 and 5xx in retry_on are; a 403 in it only with a Retry-After or the remaining count at 0."""
    rule = RateLimit.model_validate({"retry_on": [403, 429, 503], "remaining_header": "X-RateLimit-Remaining"})

    def headers(**values: str) -> typing.Callable[[str], str | None]:
        return lambda name: values.get(name.replace("-", "_"))

    assert is_limited(rule, 429, headers()) and is_limited(rule, 503, headers())
    assert not is_limited(rule, 404, headers(Retry_After="1"))
    assert not is_limited(rule, 403, headers(X_RateLimit_Remaining="12"))
    assert not is_limited(rule, 403, headers())
    assert is_limited(rule, 403, headers(X_RateLimit_Remaining=" 0"))
    assert is_limited(rule, 403, headers(Retry_After="60"))
    assert not is_limited(RateLimit.model_validate({"retry_on": [403]}), 403, headers(X_RateLimit_Remaining="0"))
