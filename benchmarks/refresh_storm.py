"""A refresh storm: N connections due at once, refreshed by the background refresher, against a minimal client.

    make bench-refresh     # or: .venv/bin/python benchmarks/refresh_storm.py [--count 10000] [--concurrency 32]
                           #     [--processes 1] [--postgres URL]

On a temporary PostgreSQL database: a loopback token endpoint that counts grants per connection
(tests/servers/grant_counter.py, pinned to ``--endpoint-cpus``) first serves ``--count`` grants to a
minimal client (aiohttp, ``--concurrency`` at once); then ``--count`` client-credentials-like
connections (custom_token) are seeded with tokens that are not due, one UPDATE makes them all due,
and ``--processes`` refreshers (``BackgroundRefresher.run_once``, each its own process with its own
store, ``--concurrency`` refreshes at once) work through them. The minimal client runs again
afterwards; the faster of its two runs is the reference. Prints both times, the grants counted (each
connection must have exactly one) and ``target refresh-storm-vs-endpoint: <ratio> (goal <= 1.2)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import resource
import subprocess
import sys
import time
import typing
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import anyio
import asyncpg
import httpx
from sqlalchemy import insert, update
from sqlalchemy.engine import make_url

from authbridge.app import REFRESHER_GC_YOUNG, http_client, loop_options, open_store, policy_for, settle_gc
from authbridge.broker import Broker
from authbridge.broker.background import BackgroundRefresher
from authbridge.config import Settings
from authbridge.spec import load_spec
from authbridge.store.models import ConnectionRow, CredentialRow
from authbridge.store.repo import new_id

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    busy_between,
    cpu_seconds,
    cpu_times,
    free_port,
    pinned,
    postgres_cpu,
    postgres_cpu_between,
    target_line,
    wait_http,
)

ROOT = Path(__file__).resolve().parents[1]


def spec(endpoint: str) -> str:
    return f"""
key: storm
name: Storm
parameters: [{{name: n, required: true}}]
auth:
  type: custom_token
  token_url: {endpoint}/token
  token_method: POST
  token_body: form
  token_params: {{conn: "{{n}}"}}
  token_response: {{access_token: access_token, expires_in: {{path: expires_in}}}}
request: {{base_url: {endpoint}}}
"""


async def minimal_client(endpoint: str, count: int, concurrency: int) -> float:
    """Seconds for ``count`` grants, ``concurrency`` at a time, by the least a client can do."""
    limiter = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def one(n: int) -> None:
            async with limiter, session.post(f"{endpoint}/token", data={"conn": f"client-{n}"}) as response:
                await response.read()
                assert response.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(count)))
        return time.perf_counter() - started


async def seed(settings: Settings, endpoint: str, count: int) -> None:
    """``count`` active connections with a token not yet due (bulk-inserted, encrypted per row), then all due."""
    store = await open_store(settings)
    try:
        await store.integrations.save(load_spec(spec(endpoint)))
        integration = await store.integrations.get("storm")
        now = datetime.now(UTC)
        later = now + timedelta(hours=1)
        enc = store.ctx.encrypt
        for start in range(0, count, 2_000):
            rows, creds = [], []
            for n in range(start, min(start + 2_000, count)):
                row_id = new_id()
                rows.append(
                    {
                        "id": row_id,
                        "integration_id": integration.id,
                        "name": f"c{n}",
                        "status": "active",
                        "parameters": {"n": f"c{n}"},
                        "version": 1,
                        "created_at": now,
                        "updated_at": now,
                        "expires_at": later,
                        "refresh_failures": 0,
                    }
                )
                creds.append(
                    {
                        "connection_id": row_id,
                        "access_token": enc(f"c{n}-0", "credentials", row_id, "access_token"),
                        "token_type": "Bearer",
                        "expires_at": later,
                        "version": 1,
                        "updated_at": now,
                    }
                )
            async with store.ctx.session() as session:
                await session.execute(insert(ConnectionRow), rows)
                await session.execute(insert(CredentialRow), creds)
        async with store.ctx.session() as session:
            past = datetime.now(UTC) - timedelta(minutes=1)
            await session.execute(update(CredentialRow).values(expires_at=past))
            await session.execute(update(ConnectionRow).values(expires_at=past))
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def refresher_for(env: dict[str, str], concurrency: int) -> typing.AsyncIterator[BackgroundRefresher]:
    """A background refresher on the store ``env`` names, set up as ``authbridge refresher`` sets its own up.

    Its own store, HTTP client, keeper and lease owner; ``concurrency`` refreshes at once, batches of twice
    that; the collector settled as ``run_background`` does. Closed on the way out.
    """
    settings = Settings.from_env(env)
    store = await open_store(settings)
    http = http_client(settings)
    try:
        broker = Broker(store, http=http, policy=policy_for(settings))
        refresher = BackgroundRefresher(
            store, broker.connections.keeper, clock=broker.clock, concurrency=concurrency, batch=2 * concurrency
        )
        settle_gc(REFRESHER_GC_YOUNG)
        yield refresher
    finally:
        await http.aclose()
        await store.close()


def refresher_process(
    env: dict[str, str],
    concurrency: int,
    ready: typing.Any,
    go: typing.Any,
    storm_cpu: typing.Any,
    done: typing.Any,
    release: typing.Any,
) -> None:
    """One replica's refresher (``refresher_for``); scans until nothing is due.

    ``storm_cpu`` (two shared doubles) gets the process's user and system CPU seconds from ``go`` to the last
    scan: start-up left out. ``done`` is set after the last scan; the store is closed once ``release`` is
    (so its PostgreSQL backends are still there to be measured).
    """

    async def work() -> None:
        async with refresher_for(env, concurrency) as refresher:
            ready.set()
            go.wait()
            before = os.times()
            while await refresher.run_once():
                pass
            after = os.times()
            storm_cpu[0], storm_cpu[1] = after.user - before.user, after.system - before.system
            done.set()
            release.wait(600)  # (an exited backend is still counted: through its postmaster)

    anyio.run(work, backend_options=loop_options())  # the loop `authbridge refresher` runs on (uvloop)


class Storm:
    """A storm's set-up: a temporary database, the grant counter, and the minimal client's times around the storm."""

    def __init__(
        self, endpoint: str, env: dict[str, str], dsn: str, count: int, concurrency: int, endpoint_pid: int
    ) -> None:
        self.endpoint, self.env, self.dsn, self.endpoint_pid = endpoint, env, dsn, endpoint_pid
        self.count, self.concurrency = count, concurrency
        self.before = self.after = 0.0

    def grants_after(self) -> dict[str, typing.Any]:
        """The grants the endpoint counted during the storm; then the minimal client's second run."""
        stats: dict[str, typing.Any] = httpx.get(f"{self.endpoint}/stats").json()
        httpx.post(f"{self.endpoint}/reset")
        self.after = asyncio.run(minimal_client(self.endpoint, self.count, self.concurrency))
        return stats


async def admin_in(dsn: str, sql: str) -> None:
    """Run one statement on its own connection (outside a transaction: CREATE DATABASE, VACUUM)."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def storm(postgres: str, endpoint_cpus: str, count: int, concurrency: int) -> typing.Iterator[Storm]:
    """A temporary database seeded with ``count`` due connections, the grant counter pinned to ``endpoint_cpus``.

    The minimal client runs once before seeding (``Storm.before``); ``Storm.grants_after`` runs it again.
    The database is dropped and the counter stopped on the way out. Used by refresh_floor.py too.
    """
    name = f"ab_storm_{uuid.uuid4().hex[:8]}"
    admin_dsn = make_url(postgres).set(drivername="postgresql").render_as_string(hide_password=False)

    async def admin(sql: str) -> None:
        await admin_in(admin_dsn, sql)

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tests.servers.grant_counter", "--port", str(port)]
    counter = subprocess.Popen(pinned(endpoint_cpus, command), cwd=ROOT)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")},
        "AUTHBRIDGE_DATA_DIR": str(Path(f"/tmp/{name}")),
        "AUTHBRIDGE_DATABASE_URL": make_url(postgres).set(database=name).render_as_string(False),
        "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTHBRIDGE_LOG_LEVEL": "warning",
    }
    dsn = make_url(postgres).set(drivername="postgresql", database=name).render_as_string(False)
    setup = Storm(endpoint, env, dsn, count, concurrency, counter.pid)
    try:
        wait_http(f"{endpoint}/stats")
        setup.before = asyncio.run(minimal_client(endpoint, count, concurrency))
        httpx.post(f"{endpoint}/reset")
        asyncio.run(seed(Settings.from_env(env), endpoint, count))
        # As autovacuum leaves a table whose rows were last written an hour before they fall due: the
        # seed's bulk UPDATE's dead row versions gone, the planner's statistics current.
        asyncio.run(admin_in(dsn, "VACUUM ANALYZE"))
        yield setup
    finally:
        counter.terminate()
        counter.wait(10)
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--processes", type=int, default=1, help="refresher processes (replicas) sharing the work")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--endpoint-cpus", default="1")
    args = parser.parse_args()
    with storm(args.postgres, args.endpoint_cpus, args.count, args.concurrency) as setup:
        env = setup.env
        context = multiprocessing.get_context("spawn")
        ready = [context.Event() for _ in range(args.processes)]
        go = context.Event()
        storm_cpu = [context.Array("d", 2) for _ in range(args.processes)]
        done = [context.Event() for _ in range(args.processes)]
        release = context.Event()
        workers = [
            context.Process(  # daemons: ended with this process if it stops before releasing them
                target=refresher_process,
                args=(env, args.concurrency, ready[i], go, storm_cpu[i], done[i], release),
                daemon=True,
            )
            for i in range(args.processes)
        ]
        for worker in workers:
            worker.start()
        for event in ready:
            event.wait(120)
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cores_before, endpoint_before, pg_before = cpu_times(), cpu_seconds(setup.endpoint_pid), postgres_cpu()
        started = time.perf_counter()
        go.set()
        for event, worker in zip(done, workers, strict=True):
            while not event.wait(0.2) and worker.is_alive():  # a worker that failed does not set it
                pass
        refresh = time.perf_counter() - started
        cores = busy_between(cores_before, cpu_times())
        endpoint_cpu = cpu_seconds(setup.endpoint_pid) - endpoint_before
        pg_cpu = postgres_cpu_between(pg_before, postgres_cpu())
        release.set()
        for worker in workers:
            worker.join()
        failed = [worker.exitcode for worker in workers if worker.exitcode != 0]
        if failed:
            raise SystemExit(f"{len(failed)} refresher process(es) failed (exit codes {failed}): their output is above")
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
        stats = setup.grants_after()
    before, after = setup.before, setup.after
    reference = min(before, after)
    once = sum(1 for v in stats["per_connection"].values() if v == 1)
    user = sum(value[0] for value in storm_cpu)
    system = sum(value[1] for value in storm_cpu)
    during = user + system
    print(
        f"refresher ({args.processes} process(es), {args.concurrency} at once each): {args.count:,} due connections "
        f"in {refresh:.2f} s ({args.count / refresh:,.0f}/s), {cpu:.2f} s of CPU in the refresher process(es)\n"
        f"refresher CPU during the storm (start-up left out): {during:.2f} s, "
        f"{during / args.count * 1000:.3f} ms per refresh ({user / args.count * 1000:.3f} user, "
        f"{system / args.count * 1000:.3f} system)\n"
        f"minimal client ({args.concurrency} at once): {args.count:,} grants in {before:.2f} s before, "
        f"{after:.2f} s after ({args.count / reference:,.0f}/s at best)\n"
        f"grants to the endpoint during the storm: {stats['total']:,}; connections refreshed exactly once: {once:,}\n"
        f"during the storm: the endpoint used {endpoint_cpu:.2f} s of CPU, PostgreSQL {pg_cpu:.2f} s "
        f"({pg_cpu / args.count * 1000:.3f} ms per refresh); cores busy "
        + ", ".join(f"{name} {share:.0f} %" for name, share in sorted(cores.items()))
    )
    print(target_line("refresh-storm-vs-endpoint", refresh / reference, "<=", 1.2))
    print(target_line("refresh-storm-grants", float(stats["total"]), "<=", float(args.count), ".0f"))
    return 0 if stats["total"] == args.count and once == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
