"""100,000 connections on PostgreSQL: GET /connections (cursor pages, filters), the refresher's scan plan, memory.

    make bench-scale       # or: .venv/bin/python benchmarks/scale.py [--rows 100000] [--postgres URL]

Makes a temporary database, seeds ``--rows`` connections over 20 integrations and 5,000 end users
(statuses 90 % active, 5 % needs_reauth, 5 % error) with bulk inserts, starts ``authbridge run`` on it
(pinned to ``--server-cpus``), and times ``--requests`` sequential calls of each listing: no filter, by
integration, by status, by end user, integration + status, and page 50 of a cursor walk. Prints the
p50/p99 of each, EXPLAIN (ANALYZE) of the refresher's claim query, the server's resident memory idle
and after the load, and ends with ``target list-p50-ms-100k: <worst p50> (goal <= 20) ok|MISSED``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import insert, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from authbridge.app import open_store
from authbridge.config import Settings
from authbridge.spec import load_spec
from authbridge.store import ConnectionFilter
from authbridge.store.connections import _PG_CLAIM_WITH_CREDENTIALS as CLAIM_WITH_CREDENTIALS
from authbridge.store.models import ConnectionRow, IntegrationRow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_port, pinned, rss_kib, target_line, wait_http

INTEGRATIONS = 20
END_USERS = 5_000


async def seed(settings: Settings, rows: int) -> dict[str, str]:
    """Integrations and ``rows`` connections, bulk-inserted; returns sample filter values."""
    store = await open_store(settings)
    try:
        for n in range(INTEGRATIONS):
            await store.integrations.save(load_spec(f"key: api{n}\nname: API {n}\nauth: {{type: api_token}}\n"))
        async with store.ctx.session() as session:
            ids = dict((await session.execute(text("SELECT key, id FROM integrations"))).all())
        rng = random.Random(7)
        start = datetime.now(UTC) - timedelta(days=365)
        batch: list[dict[str, object]] = []
        for n in range(rows):
            user = f"user-{rng.randrange(END_USERS)}"
            status = "active" if rng.random() < 0.9 else rng.choice(["needs_reauth", "error"])
            created = start + timedelta(seconds=n * 300)
            batch.append(
                {
                    "id": uuid.uuid4().hex,
                    "integration_id": ids[f"api{n % INTEGRATIONS}"],
                    "name": f"c{n}",
                    "status": status,
                    "parameters": {},
                    "version": 1,
                    "created_at": created,
                    "updated_at": created,
                    "expires_at": datetime.now(UTC) + timedelta(minutes=rng.randrange(60 * 48)),
                    "last_refreshed_at": datetime.now(UTC) - timedelta(minutes=rng.randrange(60 * 20)),
                    "refresh_failures": 0,
                    "end_user_id": user,
                    "end_user": {"id": user},
                }
            )
            if len(batch) == 5_000 or n == rows - 1:
                async with store.ctx.session() as session:
                    await session.execute(insert(ConnectionRow), batch)
                batch = []
        async with store.engine.connect() as conn:
            await conn.execute(text("COMMIT"))
            await conn.execute(text("ANALYZE"))
        return {"integration": "api3", "status": "needs_reauth", "end_user_id": "user-42"}
    finally:
        await store.close()


async def list_plans(settings: Settings, cases: dict[str, dict[str, str]]) -> dict[str, str]:
    """Each listing's statement as the store builds it: its plan's top line and execution time on PostgreSQL."""
    store = await open_store(settings)
    plans = {}
    try:
        for label, params in cases.items():
            where = ConnectionFilter(
                integration_key=params.get("integration"),
                status=params.get("status"),
                end_user_id=params.get("end_user_id"),
            )
            query = store.connections.page_query(where, limit=100, cursor=params.get("cursor"))
            sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            async with store.ctx.session() as session:
                plan = (await session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}"))).scalars().all()
            scans = [line.strip() for line in plan if "Scan" in line]
            plans[label] = f"{plan[-1].strip()}; {scans[0] if scans else plan[0].strip()}"
        return plans
    finally:
        await store.close()


async def claim_plan(settings: Settings) -> str:
    """EXPLAIN (ANALYZE) of the refresher's claim query, as the store builds it."""
    store = await open_store(settings)
    try:
        now = datetime.now(UTC)
        query = store.connections.claim_query(
            expiring_before=now + timedelta(hours=2), idle_before=now - timedelta(hours=24), limit=64
        )
        sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        async with store.ctx.session() as session:
            plan = (await session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}"))).scalars().all()
        _ = IntegrationRow  # the join the listing makes is shown by the timings
        # The statement the refresher runs on PostgreSQL (claim and credentials in one), in a transaction
        # rolled back on close: EXPLAIN ANALYZE executes it, and its leases must not stay.
        params = (now, now + timedelta(hours=2), now - timedelta(hours=24), 64, timedelta(minutes=2), "explain")
        async with store.engine.connect() as connection:
            combined = (
                (await connection.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF) {CLAIM_WITH_CREDENTIALS}", params))
                .scalars()
                .all()
            )
        return (
            "\n".join(plan)
            + "\n\nclaim with credentials (what the refresher runs on PostgreSQL):\n"
            + "\n".join(combined)
        )
    finally:
        await store.close()


def timed(client: httpx.Client, url: str, params: dict[str, str], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="calls of each listing")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--server-cpus", default="0")
    args = parser.parse_args()
    name = f"ab_scale_{uuid.uuid4().hex[:8]}"
    admin_dsn = make_url(args.postgres).set(drivername="postgresql").render_as_string(hide_password=False)

    async def create() -> None:
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()

    async def drop() -> None:
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    asyncio.run(create())
    with tempfile.TemporaryDirectory(prefix="ab-scale-") as tmp:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")},
            "AUTHBRIDGE_DATA_DIR": str(Path(tmp) / "data"),
            "AUTHBRIDGE_DATABASE_URL": make_url(args.postgres).set(database=name).render_as_string(False),
            "AUTHBRIDGE_BACKGROUND_TASKS": "false",
            "AUTHBRIDGE_LOG_LEVEL": "warning",
        }
        settings = Settings.from_env(env)
        server = None
        try:
            started = time.perf_counter()
            filters = asyncio.run(seed(settings, args.rows))
            print(f"seeded {args.rows:,} connections in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            cli = [sys.executable, "-m", "authbridge"]
            key = subprocess.run(
                [*cli, "api-keys", "create", "--name", "scale"], env=env, capture_output=True, check=True
            )
            port = free_port()
            server = subprocess.Popen(pinned(args.server_cpus, [*cli, "run", "--port", str(port)]), env=env)
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/health")
            idle = rss_kib(server.pid)
            headers = {"Authorization": f"Bearer {key.stdout.decode().strip()}"}
            results: dict[str, list[float]] = {}
            with httpx.Client(headers=headers, timeout=30) as client:
                url = f"{base}/connections"
                cursor = None
                for _ in range(50):  # walk to page 50, then time that page
                    page = client.get(url, params={"cursor": cursor} if cursor else {}).json()
                    cursor = page["next_cursor"]
                cases = {
                    "no filter": {},
                    "integration": {"integration": filters["integration"]},
                    "status": {"status": filters["status"]},
                    "end user": {"end_user_id": filters["end_user_id"]},
                    "integration + status": {"integration": filters["integration"], "status": filters["status"]},
                    "page 50 (cursor)": {"cursor": cursor or ""},
                }
                for label, params in cases.items():
                    timed(client, url, params, 10)  # warm-up
                    results[label] = timed(client, url, params, args.requests)
            loaded = rss_kib(server.pid)
            plan = asyncio.run(claim_plan(settings))
            plans = asyncio.run(list_plans(settings, cases))
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)
            asyncio.run(drop())
    print(f"GET /connections (100 per page) on {args.rows:,} connections, {args.requests} calls each\n")
    print("| listing | p50 ms | p99 ms | the query in PostgreSQL (EXPLAIN ANALYZE) |\n| --- | ---: | ---: | --- |")
    worst = 0.0
    for label, samples in results.items():
        ordered = sorted(samples)
        p50 = statistics.median(ordered)
        worst = max(worst, p50)
        p99 = ordered[int(len(ordered) * 0.99) - 1]
        print(f"| {label} | {p50:.1f} | {p99:.1f} | {plans.get(label, '')} |")
    print(f"\nserver resident memory: idle {idle:,} KiB, after the listings {loaded:,} KiB")
    print("\nthe refresher's claim query on PostgreSQL (EXPLAIN ANALYZE):\n```\n" + plan + "\n```\n")
    print(target_line("list-p50-ms-100k", worst, "<=", 20.0, ".1f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
