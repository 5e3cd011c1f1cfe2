"""What rate_limit costs the proxy's hot path for an integration WITHOUT it, per request, in one run.

    .venv/bin/python benchmarks/rate_limit_overhead.py

Compares the per-request work the rate-limit change added (one pass over the caller's headers for
``X-AuthBridge-*`` options instead of one for ``X-AuthBridge-Retries``; one more coroutine call; the
``rule is not None`` checks) with the previous code measured in the same process, as a ratio.
"""

from __future__ import annotations

import asyncio
import timeit

from authbridge.proxy import forward

HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"python-httpx/0.28"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"x-authbridge-key", b"ab_0123456789abcdef"),
    (b"x-request-id", b"c0ffee"),
]


def old_retries(headers: list[tuple[bytes, bytes]], method: str) -> int:
    """The previous per-request header pass (``_retries``), as it was."""
    for name, value in headers:
        if name == b"x-authbridge-retries":
            return max(0, min(int(value), 5)) if method in forward._IDEMPOTENT else 0
    return 0


async def _inner() -> None:
    return None


async def one_level() -> None:
    await _inner()


async def two_levels() -> None:
    limits = None
    if limits is not None:  # the new branch, never taken without rate_limit
        return
    await one_level()


def main() -> int:
    number = 200_000
    old = min(timeit.repeat(lambda: old_retries(HEADERS, "GET"), number=number, repeat=5)) / number
    new = min(timeit.repeat(lambda: forward._options(HEADERS, "GET"), number=number, repeat=5)) / number
    loop = asyncio.new_event_loop()
    calls = 20_000

    async def run(fn: object) -> None:
        for _ in range(calls):
            await fn()  # type: ignore[operator]

    one = min(timeit.repeat(lambda: loop.run_until_complete(run(one_level)), number=1, repeat=5)) / calls
    two = min(timeit.repeat(lambda: loop.run_until_complete(run(two_levels)), number=1, repeat=5)) / calls
    loop.close()
    print(f"header pass: old {old * 1e9:.0f} ns, new {new * 1e9:.0f} ns, ratio {new / old:.2f}")
    print(f"extra coroutine level + check: {(two - one) * 1e9:.0f} ns per request")
    print(f"total added per request: {(new - old + two - one) * 1e9:.0f} ns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
