"""The refresh storm's floor: what a refresh path without the generic layers costs (a measurement, not product code).

    .venv/bin/python benchmarks/refresh_floor.py [--count 10000] [--with claim,call,store]
    make bench-refresh-layers     # or: .venv/bin/python benchmarks/refresh_floor.py --table

Same set-up as ``refresh_storm.py`` (its seed, grant counter pinned to CPU 1, minimal client). The
background refresher is replaced by the least a correct refresh of these connections does: a raw
asyncpg claim of 64 rows (``FOR UPDATE SKIP LOCKED``, the lease columns), 32 token calls at once
through the lean client (``authbridge.upstream_http``), ``json.loads`` and the key ring's AES-GCM per
answer, and one transaction per batch of three ``unnest()`` statements (credentials, connections,
events), one batch claimed ahead while two batches' calls run; on the loop and with the collector
``authbridge refresher`` uses (uvloop, ``settle_gc``). Not done here, and done by the real
refresher: per-spec request building and answer checking, versioned writes, failure handling,
webhook deliveries, cache invalidations. It says how far a dedicated bulk path could go
(docs/performance.md, "Refresh storm").

``--with claim,call,store`` swaps the product's own layers in, one at a time, to say what each costs
in the storm beside the floor's: ``claim`` the refresher's claim
(``ConnectionRepo.claim_due_with_credentials``: records made, credentials decrypted), ``call`` the
token call as the refresher makes it (``Connections.fetch_refresh``: the spec's request rendered,
sent through the httpx client, its answer read by ``parse_token_response``), ``store`` the
refresher's write (``ConnectionRepo.store_refreshes``: versioned, invalidations, events, webhook
deliveries; it seals what the product's call would give it, the answer kept as ``raw``). The
product's store pool is opened before the storm. With all three, what is left between it and
``refresh_storm.py`` is the orchestration (``BackgroundRefresher``, ``TokenKeeper.refresh_batch``).
``--table`` runs the floor alone and with each layer in turn (about a minute), prints a table of
them and the margin two cores leave everything the product adds over the floor (1.2x the minimal
client's time on both cores, less the endpoint's CPU, less the floor's own). docs/architecture.md,
"Refresh storm, fifth pass", has what each measured.
"""

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import asyncpg

from authbridge.app import (
    REFRESHER_GC_YOUNG,
    http_client,
    loop_options,
    open_key_ring,
    open_store,
    policy_for,
    settle_gc,
)
from authbridge.auth import TokenSet
from authbridge.broker import Broker
from authbridge.broker.refresh import credentials_from
from authbridge.config import Settings
from authbridge.netguard import GuardedResolver
from authbridge.store import ConnectionRecord, CredentialRecord, RefreshOutcome
from authbridge.store.crypto import aad_for
from authbridge.upstream_http import UpstreamClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import refresh_storm as rs  # noqa: E402 - a sibling script: its seed, grant counter and minimal client
from _common import cpu_seconds, postgres_cpu, postgres_cpu_between  # noqa: E402

CLAIM = """
UPDATE connections SET refresh_lease_until = now() + interval '2 minutes', refresh_lease_owner = 'floor'
WHERE id IN (
  SELECT id FROM connections WHERE status = 'active' AND expires_at < now()
    AND (refresh_lease_until IS NULL OR refresh_lease_until < clock_timestamp())
  ORDER BY expires_at LIMIT 64 FOR UPDATE SKIP LOCKED)
RETURNING id, parameters
"""
#: The floor's claim with the credentials' version, for the product's store without its claim (the floor needs none).
CLAIM_WITH_VERSION = CLAIM.replace(
    "RETURNING id, parameters",
    "RETURNING id, parameters, (SELECT version FROM credentials WHERE connection_id = connections.id)",
)
STORE_CREDENTIALS = """
UPDATE credentials c SET access_token = v.tok, expires_at = v.exp, version = c.version + 1, updated_at = $4
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS v(id, tok, exp) WHERE c.connection_id = v.id
"""
STORE_CONNECTIONS = """
UPDATE connections c SET expires_at = v.exp, last_refreshed_at = $3, refresh_failures = 0,
  refresh_lease_until = NULL, refresh_lease_owner = NULL, updated_at = $3
FROM unnest($1::text[], $2::timestamptz[]) AS v(id, exp) WHERE c.id = v.id AND c.refresh_lease_owner = 'floor'
"""
STORE_EVENTS = """
INSERT INTO events (type, connection_id, integration_key, data, created_at)
SELECT 'connection.refreshed', v.id, 'storm', json_build_object('expires_at', v.exp), $3
FROM unnest($1::text[], $2::timestamptz[]) AS v(id, exp)
"""
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
LAYERS = ("claim", "call", "store")


def worker(env, endpoint, dsn, conc, layers, ready, go, out, release):
    async def work():
        settings = Settings.from_env(env)
        ring = open_key_ring(settings)
        client = UpstreamClient(GuardedResolver(allow_private=True))
        store = await open_store(settings)  # the product's layers (``--with``)
        http = http_client(settings)
        broker = Broker(store, http=http, policy=policy_for(settings))
        spec = (await store.integrations.get("storm")).spec
        owner = "floor"
        db = await asyncpg.connect(dsn)
        store_db = await asyncpg.connect(dsn)
        if layers:
            await store.connections.claim_due_with_credentials(  # the pool's connection opened before the storm
                owner, timedelta(minutes=2), expiring_before=datetime.now(UTC), idle_before=datetime.now(UTC), limit=0
            )
        ready.set()
        go.wait()
        c0 = time.process_time()
        sem = asyncio.Semaphore(conc)
        total = 0
        store_lock = asyncio.Lock()

        floor_claim = CLAIM_WITH_VERSION if "store" in layers else CLAIM

        async def claim():
            if "claim" not in layers:
                return await db.fetch(floor_claim)
            now = datetime.now(UTC)
            return await store.connections.claim_due_with_credentials(
                owner, timedelta(minutes=2), expiring_before=now, idle_before=now - timedelta(days=1), limit=64
            )

        def records_of(row, n):
            now = datetime.now(UTC)
            connection = ConnectionRecord(
                id=row["id"], integration_id="-", integration_key="storm", name=n, status="active",
                parameters={"n": n}, secret_names=frozenset(), last_error=None, warning=None, expires_at=now,
                last_refreshed_at=None, version=1, created_at=now, updated_at=now,
            )  # fmt: skip
            return connection, CredentialRecord(access_token="-", token_type="Bearer", version=row.get("version", 1))

        async def one(row):
            """One refresh: the product's layers asked for, the floor's way for the others (no work the floor skips)."""
            async with sem:
                if "claim" in layers:
                    connection, creds = row
                    connection_id, n = connection.id, connection.parameters["n"]
                else:
                    connection_id, n = row["id"], json.loads(row["parameters"])["n"]
                    connection = creds = None
                if "call" in layers:
                    if connection is None:  # the floor's claim: what the call reads, from its row (no query more)
                        connection, creds = records_of(row, n)
                    tokens = await broker.connections.fetch_refresh(connection, spec, creds)
                    access, expires_at = tokens.access_token, tokens.expires_at
                else:
                    r = await client.request("POST", f"{endpoint}/token", FORM, f"conn={n}".encode())
                    body = json.loads(await r.read())
                    r.release()
                    access = body["access_token"]
                    expires_at = datetime.now(UTC) + timedelta(seconds=int(body["expires_in"]))
                    if "store" in layers:  # what the product's store seals is what its call gives: ``raw`` too
                        tokens = TokenSet(access, token_type=body["token_type"], expires_at=expires_at, raw=body)
                if "store" not in layers:
                    tok = ring.encrypt(access, aad=aad_for("credentials", connection_id, "access_token"))
                    return connection_id, tok, expires_at
                if creds is None:
                    _, creds = records_of(row, n)
                return RefreshOutcome(
                    connection_id=connection_id,
                    integration_key="storm",
                    credentials=credentials_from(tokens, creds),
                    version=creds.version,
                    events=(("connection.refreshed", {"expires_at": expires_at.isoformat()}),),
                )

        async def batch(rows):
            nonlocal total
            done = await asyncio.gather(*(one(r) for r in rows))
            if "store" in layers:
                async with store_lock:
                    await store.connections.store_refreshes(owner, done)
                total += len(rows)
                return
            ids = [d[0] for d in done]
            toks = [d[1] for d in done]
            exps = [d[2] for d in done]
            now = datetime.now(UTC)
            async with store_lock, store_db.transaction():
                await store_db.execute(
                    STORE_CREDENTIALS,
                    ids,
                    toks,
                    exps,
                    now,
                )
                await store_db.execute(
                    STORE_CONNECTIONS,
                    ids,
                    exps,
                    now,
                )
                await store_db.execute(
                    STORE_EVENTS,
                    ids,
                    exps,
                    now,
                )
            total += len(rows)

        running = set()
        while True:
            rows = await claim()
            if not rows:
                break
            task = asyncio.ensure_future(batch(rows))
            running.add(task)
            task.add_done_callback(running.discard)
            while len(running) >= 3:  # two batches' calls under way, the next one claimed ahead
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        if running:
            await asyncio.gather(*running)
        out.put((total, time.process_time() - c0))
        release.wait(120)  # the connections stay open until PostgreSQL's CPU is read
        await http.aclose()
        await store.close()

    settle_gc(REFRESHER_GC_YOUNG)  # as `authbridge refresher` runs: the collector settled, on its loop (uvloop)
    anyio.run(work, backend_options=loop_options())


class Run(typing.NamedTuple):
    """One floor storm: its layers, wall time, the refresher's, PostgreSQL's and the endpoint's CPU, the reference."""

    layers: str
    count: int
    wall: float
    cpu: float
    pg: float
    endpoint: float
    reference: float
    grants: int

    def line(self) -> str:
        n = self.count
        return (
            f"floor refresher (product layers: {self.layers}): {n:,} due connections in {self.wall:.2f} s, "
            f"CPU {self.cpu:.2f} s ({self.cpu / n * 1000:.3f} ms per refresh), PostgreSQL {self.pg:.2f} s "
            f"({self.pg / n * 1000:.3f} ms per refresh), endpoint {self.endpoint:.2f} s; minimal client "
            f"{self.reference:.2f} s; ratio {self.wall / self.reference:.2f} (the real refresher's goal: <= 1.2); "
            f"grants {self.grants:,}"
        )


def measure(postgres: str, count: int, layers: set[str]) -> Run:
    """One storm of ``count`` due connections refreshed by the floor with the product's ``layers``."""
    with rs.storm(postgres, "1", count, 32) as setup:
        ctx = multiprocessing.get_context("spawn")
        ready, go, out, release = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Event()
        p = ctx.Process(
            target=worker, args=(setup.env, setup.endpoint, setup.dsn, 32, layers, ready, go, out, release), daemon=True
        )
        p.start()
        ready.wait(60)
        pg_before, endpoint_before = postgres_cpu(), cpu_seconds(setup.endpoint_pid)
        t0 = time.perf_counter()
        go.set()
        total, cpu = out.get(timeout=600)  # (queue.Empty: the worker failed, its output above)
        wall = time.perf_counter() - t0
        pg = postgres_cpu_between(pg_before, postgres_cpu())
        endpoint = cpu_seconds(setup.endpoint_pid) - endpoint_before
        release.set()
        p.join()
        stats = setup.grants_after()
    named = ", ".join(sorted(layers)) or "none"
    return Run(named, total, wall, cpu, pg, endpoint, min(setup.before, setup.after), stats["total"])


def table(postgres: str, count: int) -> None:
    """Every layer in turn, then a table and the margin the two cores leave the product over the floor."""
    runs = []
    for layers in ((), ("claim",), ("store",), ("call",), LAYERS):
        run = measure(postgres, count, set(layers))
        print(run.line(), flush=True)
        runs.append(run)
    print("\n| layers from the product | refresher ms per refresh | PostgreSQL ms per refresh | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for run in runs:
        per = 1000 / run.count
        print(f"| {run.layers} | {run.cpu * per:.3f} | {run.pg * per:.3f} | {run.wall / run.reference:.2f} |")
    floor = runs[0]
    per = 1000 / floor.count
    # 1.2x the minimal client's time on two cores, less the endpoint's CPU: what the refresher and PostgreSQL
    # may spend per refresh with both cores fully busy; the floor's own spending taken off.
    budget = (2 * 1.2 * floor.reference - floor.endpoint) * per
    spent = (floor.cpu + floor.pg) * per
    print(
        f"\nrefresher + PostgreSQL may spend {budget:.3f} ms per refresh for 1.2x with both cores fully busy; "
        f"the floor spends {spent:.3f}: the margin for everything the product adds is {budget - spent:.3f} ms"
    )
    for run in runs[1:]:
        added = (run.cpu + run.pg) * per - spent
        print(f"  {run.layers}: adds {added:.3f} ms per refresh over the floor")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument(
        "--with", dest="layers", default="", help=f"the product's layers to use, comma-separated: {', '.join(LAYERS)}"
    )
    parser.add_argument("--table", action="store_true", help="every layer in turn, a table and the margin")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    layers = {name for name in args.layers.split(",") if name}
    if layers - set(LAYERS):
        parser.error(f"--with takes {', '.join(LAYERS)}")
    if args.table:
        table(args.postgres, args.count)
    else:
        print(measure(args.postgres, args.count, layers).line())


if __name__ == "__main__":
    main()
