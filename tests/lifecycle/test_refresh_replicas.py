"""Three ``authbridge run`` replicas on one PostgreSQL split a storm of due tokens: each refreshed exactly once.

The connections are made with tokens that are not due; once the three servers are up, one UPDATE makes
every token due at the same moment (what a provider outage or a deploy does). The token endpoint is a
loopback server counting grants per connection (tests/servers/grant_counter.py). Each replica logs how
many it refreshed, which shows the split. The refresher's claim is unit-tested on both backends in
tests/store/test_claims.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from authbridge.spec import load_spec
from authbridge.store import CredentialRecord
from authbridge.store.models import ConnectionRow, CredentialRow
from authbridge.testing import memory_key_ring
from tests.lifecycle.helpers import OffsetClock, env_for, open_broker
from tests.proxy.conftest import create_key, run_authbridge, server_env

#: Kept modest so the test stays well under a minute on a loaded 2-core machine (benchmarks/ uses 10,000).
CONNECTIONS = 120
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def grant_counter(*, delay_ms: float) -> Iterator[str]:
    """The counting token endpoint as its own process; its base URL."""
    port = _free_port()
    command = [sys.executable, "-m", "tests.servers.grant_counter", "--port", str(port), "--delay-ms", str(delay_ms)]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/stats", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _spec(endpoint: str) -> str:
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


async def _seed(env: dict[str, str], endpoint: str) -> list[str]:
    """Active connections holding a token that is not due (written by the store: no grant counted)."""
    async with open_broker(env, OffsetClock()) as broker:
        await broker.save_integration(load_spec(_spec(endpoint)))
        store = broker.store
        later = datetime.now(UTC) + timedelta(hours=1)

        async def one(n: int) -> str:
            record = await store.connections.create(
                integration_key="storm", name=f"c{n}", parameters={"n": f"c{n}"}, status="active"
            )
            await store.credentials.save(record.id, CredentialRecord(access_token=f"c{n}-0", expires_at=later))
            return record.id

        ids: list[str] = []
        for start in range(0, CONNECTIONS, 25):
            ids.extend(await asyncio.gather(*(one(n) for n in range(start, min(start + 25, CONNECTIONS)))))
        return ids


async def _all_due_now(env: dict[str, str]) -> None:
    async with open_broker(env, OffsetClock()) as broker, broker.store.ctx.session() as session:
        past = datetime.now(UTC) - timedelta(minutes=1)
        await session.execute(update(CredentialRow).values(expires_at=past))
        await session.execute(update(ConnectionRow).values(expires_at=past))


def _refreshed(log: str) -> int:
    return sum(int(n) for n in re.findall(r"background refresher refreshed (\d+) connection", log))


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_three_replicas_refresh_each_due_token_once(db_url: str, tmp_path: Path) -> None:
    """CONNECTIONS tokens due at once: one grant per connection, no more, and more than one replica did some."""
    # 50 ms a grant, 4 at once: one replica alone needs ~1.5 s for the storm, longer than the 1 s between
    # scans, so the others' scans fall inside it (at 10 ms one replica often finished all 120 alone).
    with grant_counter(delay_ms=50) as endpoint:
        shared = env_for(db_url, memory_key_ring("k1"), str(tmp_path / "seed"))
        await _seed(shared, endpoint)
        replica_env = {
            **{k: v for k, v in shared.items() if k != "AUTHBRIDGE_DATA_DIR"},
            "AUTHBRIDGE_BACKGROUND_TASKS": "true",
            "AUTHBRIDGE_REFRESH_INTERVAL": "1",
            "AUTHBRIDGE_REFRESH_CONCURRENCY": "4",
            "AUTHBRIDGE_LOG_LEVEL": "info",
        }
        envs = [server_env(**replica_env, AUTHBRIDGE_DATA_DIR=str(tmp_path / f"r{i}")) for i in range(3)]
        key = create_key(envs[0], "replicas")
        with contextlib.ExitStack() as stack:
            replicas = [stack.enter_context(run_authbridge(env, key)) for env in envs]
            await _all_due_now(shared)
            deadline = time.monotonic() + 150  # a hang guard: an idle machine needs a few seconds
            done = [0, 0, 0]
            while sum(done) < CONNECTIONS and time.monotonic() < deadline:
                await asyncio.sleep(0.2)  # each replica logs its count when its scan ends
                done = [_refreshed(r.log_text()) for r in replicas]
            await asyncio.sleep(2.5)  # two more scans by every replica: nothing more may be refreshed
            stats = httpx.get(f"{endpoint}/stats").json()
            logs = [r.log_text() for r in replicas]
    assert stats["total"] == CONNECTIONS, stats["total"]
    assert sorted(stats["per_connection"]) == sorted(f"c{n}" for n in range(CONNECTIONS))
    assert set(stats["per_connection"].values()) == {1}
    done = [_refreshed(log) for log in logs]
    assert sum(done) == CONNECTIONS, done
    assert sum(1 for n in done if n > 0) >= 2, done  # the work was split
    assert all("Traceback" not in log for log in logs)
