"""What keeping caches in step with other replicas costs: one poll of the invalidation log, and the hot-path check.

    .venv/bin/python benchmarks/cache_sync.py [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

On SQLite (a temporary file) and on PostgreSQL (a temporary database), with 10,000 rows already in the
log: the time of one ``CacheSync.poll()`` when nothing changed and when 10 changes arrived since the
last poll (p50 / p99 over 300 polls), and of ``CacheSync.trusted()`` (the only work the hot path does).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import timeit
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from authbridge.broker import CacheSync
from authbridge.store import Store
from authbridge.store.invalidations import invalidate
from authbridge.store.models import CacheInvalidationRow
from authbridge.testing import memory_key_ring

POLLS = 300


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


async def measure(url: str) -> dict[str, str]:
    store = await Store.open(url, memory_key_ring("k1"))
    try:
        async with store.ctx.session() as session:
            await session.execute(
                insert(CacheInvalidationRow),
                [
                    {"kind": "connection", "ref": uuid.uuid4().hex, "created_at": store.ctx.clock()}
                    for _ in range(10_000)
                ],
            )
        sync = CacheSync(store)
        await sync.poll()
        idle: list[float] = []
        for _ in range(POLLS):
            started = time.perf_counter()
            await sync.poll()
            idle.append(time.perf_counter() - started)
        busy: list[float] = []
        for _ in range(POLLS):
            async with store.ctx.session() as session:
                for _ in range(10):
                    await invalidate(session, store.ctx, "connection", uuid.uuid4().hex)
            started = time.perf_counter()
            await sync.poll()
            busy.append(time.perf_counter() - started)
        now = time.monotonic()
        per_check = min(timeit.repeat(lambda: sync.trusted(now), number=1_000_000, repeat=3)) / 1_000_000
        return {
            "poll, nothing new": _ms(idle),
            "poll, 10 new rows": _ms(busy),
            "trusted() per request": f"{per_check * 1e9:.0f} ns",
        }
    finally:
        await store.close()


async def main(postgres: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = {"SQLite": await measure(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")}
    name = f"ab_bench_{uuid.uuid4().hex[:8]}"
    dsn = make_url(postgres).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        results["PostgreSQL"] = await measure(make_url(postgres).set(database=name).render_as_string(False))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    for backend, numbers in results.items():
        for what, value in numbers.items():
            print(f"| {backend} | {what} | {value} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    asyncio.run(main(parser.parse_args().postgres))
