"""A provider's rate limits at run time: how long it asks to wait, and per-connection slots and pacing.

Used by the proxy and the Bridge alike, from an integration's ``rate_limit`` block
(:class:`authbridge.spec.RateLimit`):

```
wait = provider_wait(rule, response_headers.get, body, time.time())   # seconds, or None
delay = retry_delay(rule, attempt=1, waited=0.0, wait=wait, budget=rule_budget)   # or None: give up
async with limiter.slot(connection_id, rule):   # max_concurrent and pace, bounded queueing
    ...send...
```

Everything here is per process: the upstream's own answers (429 + Retry-After) remain the rule
across replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
import typing
from collections.abc import AsyncIterator, Callable
from email.utils import parsedate_to_datetime

from authbridge.errors import RateLimitedError
from authbridge.spec import RateLimit, WaitFrom

__all__ = ["IDEMPOTENT", "Limiter", "is_limited", "provider_wait", "retry_delay"]

#: Methods that may be sent again (RFC 9110 §9.2.2). POST and PATCH are never replayed.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: A wait read from the provider is never taken beyond this, whatever it says (a day: garbage).
_ABSURD = 24 * 3600.0


def _number(value: str) -> float | None:
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _http_date(value: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; parsedate gives naive for "-0000"
        return None
    return when.timestamp() - now


def _read(source: WaitFrom, value: str, now: float) -> float | None:
    """Seconds to wait from one value as ``source.format`` writes it; None when it is not readable."""
    fmt = source.format
    if fmt == "http_date":
        return _http_date(value, now)
    number = _number(value)
    if number is None:
        return _http_date(value, now) if fmt == "seconds" else None  # Retry-After: an HTTP date too
    if fmt == "seconds":
        return number
    if fmt == "milliseconds":
        return number / 1000
    if fmt == "unix":
        return number - now
    return number / 1000 - now  # unix_ms


def _body_value(body: bytes | None, path: str) -> str | None:
    if not body:
        return None
    try:
        node: typing.Any = json.loads(body)
    except ValueError:
        return None
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return str(node) if isinstance(node, str | int | float) and not isinstance(node, bool) else None


def is_limited(rule: RateLimit, status: int, header: Callable[[str], str | None]) -> bool:
    """Whether an answer is the provider saying "slow down" under ``rule``.

    429 and 5xx in ``retry_on`` always are. Another 4xx in it (GitHub's 403) is one only when the answer
    shows it: a ``Retry-After``, or ``remaining_header`` at 0; otherwise it is a real refusal, relayed at once.
    """
    if status not in rule.retry_on:
        return False
    if status == 429 or status >= 500 or header("Retry-After") is not None:
        return True
    remaining = header(rule.remaining_header) if rule.remaining_header is not None else None
    return remaining is not None and remaining.strip() == "0"


def provider_wait(rule: RateLimit, header: Callable[[str], str | None], body: bytes | None, now: float) -> float | None:
    """The seconds the provider asks to wait, from the first readable ``wait_from`` source.

    A reset instant already past reads as 0; an unreadable value (garbage, NaN, a date without a
    zone) is skipped. None: no source said anything readable.
    """
    for source in rule.wait_from:
        raw = header(source.header) if source.header is not None else _body_value(body, typing.cast(str, source.body))
        if raw is None:
            continue
        wait = _read(source, raw, now)
        if wait is not None:
            return min(max(wait, 0.0), _ABSURD)
    return None


def retry_delay(attempt: int, waited: float, wait: float | None, budget: float, retries: int) -> float | None:
    """How long to sleep before retry number ``attempt`` (1-based), or None to give the answer to the caller.

    ``wait`` is what the provider asked for (None: exponential backoff from 1 s with jitter). A
    retry is taken only while ``attempt <= retries`` and the total waited stays within ``budget``.
    """
    if attempt > retries:
        return None
    if wait is None:
        wait = min(2.0 ** (attempt - 1), 30.0) * (0.5 + random.random() / 2)  # noqa: S311 - jitter
    if waited + wait > budget:
        return None
    return wait


class _Gate:
    """One connection's slots: a semaphore for ``max_concurrent``, the next free instant for ``pace``."""

    def __init__(self, rule: RateLimit) -> None:
        self.rule = rule
        self.semaphore = asyncio.Semaphore(rule.max_concurrent) if rule.max_concurrent else None
        self.next_at = 0.0


class Limiter:
    """Per-connection concurrency and pacing in this process, with bounded queueing.

    ```
    limiter = Limiter()
    async with limiter.slot("c_123", spec.rate_limit):
        response = await send(...)
    ```

    A caller that cannot get a slot within ``queue_timeout`` gets :class:`RateLimitedError` (429).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._gates: dict[str, _Gate] = {}
        self._clock = clock

    def limits(self, rule: RateLimit | None) -> bool:
        """Whether ``rule`` asks for slots at all (no: ``slot`` is not needed)."""
        return rule is not None and (rule.max_concurrent is not None or rule.pace is not None)

    def _gate(self, connection_id: str, rule: RateLimit) -> _Gate:
        gate = self._gates.get(connection_id)
        if gate is None or gate.rule != rule:  # a changed integration starts afresh
            gate = self._gates[connection_id] = _Gate(rule)
        return gate

    @contextlib.asynccontextmanager
    async def slot(self, connection_id: str, rule: RateLimit) -> AsyncIterator[None]:
        """Hold one of the connection's slots for the body of the ``async with``."""
        gate = self._gate(connection_id, rule)
        budget = rule.queue_timeout.total_seconds()
        started = self._clock()
        if rule.pace is not None:
            interval = rule.pace.per.total_seconds() / rule.pace.requests
            start = max(started, gate.next_at)
            if start - started > budget:
                raise RateLimitedError(
                    f"connection {connection_id} is paced at {rule.pace.requests} requests per "
                    f"{rule.pace.per.total_seconds():g}s and its queue is longer than {budget:g}s; retry later",
                    retry_after=start - started,
                )
            gate.next_at = start + interval
            if start > started:
                await asyncio.sleep(start - started)
        if gate.semaphore is None:
            yield
            return
        left = max(0.0, budget - (self._clock() - started))
        try:
            await asyncio.wait_for(gate.semaphore.acquire(), timeout=left)
        except TimeoutError:
            raise RateLimitedError(
                f"connection {connection_id} already has {rule.max_concurrent} requests in flight "
                f"(rate_limit.max_concurrent) and none ended within {budget:g}s; retry later",
                retry_after=1.0,
            ) from None
        try:
            yield
        finally:
            gate.semaphore.release()
