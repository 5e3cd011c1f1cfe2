"""Exactly one token-endpoint call per needed refresh: coroutines, OS processes, dead workers, rotation.

Against the real test OAuth server, which rotates refresh tokens (a replayed one gets invalid_grant).
The pure rules are in tests/auth/test_lifecycle.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from httpx import ASGITransport

from authbridge.app import create_app
from authbridge.config import Settings
from authbridge.store import KeyRing
from authbridge.testing import memory_key_ring
from tests.lifecycle.helpers import OffsetClock, apply, connect, env_for, open_broker, spec_text
from tests.servers.fixtures import OAuthServer

ROOT = Path(__file__).resolve().parents[2]
#: Jump the clock 31 minutes: a one-hour token is then inside the 30-minute window.
INSIDE_WINDOW = timedelta(minutes=31)


@pytest.fixture
def ring() -> KeyRing:
    """One key ring shared by every process of a test."""
    return memory_key_ring("k1")


@pytest.fixture
def env(db_url: str, ring: KeyRing, tmp_path: Path) -> dict[str, str]:
    """The environment of the test's processes: one database, one key ring."""
    return env_for(db_url, ring, str(tmp_path / "data"))


@pytest.fixture
async def connection_id(env: dict[str, str], oauth: OAuthServer) -> AsyncIterator[str]:
    """An active authorization-code connection holding a one-hour token and a rotating refresh token."""
    async with open_broker(env, OffsetClock()) as broker:
        await apply(broker, spec_text(oauth))
        yield await connect(broker, oauth)


def _refresh_calls(oauth: OAuthServer) -> int:
    return int(oauth.stats()["token_calls"]["refresh_token"])


async def test_fifty_concurrent_token_requests_refresh_once(
    env: dict[str, str], oauth: OAuthServer, connection_id: str
) -> None:
    """50 concurrent GET /connections/{id}/token inside the window: one token-endpoint call, all get its token."""
    clock = OffsetClock(INSIDE_WINDOW)
    app = create_app(Settings.from_env(env), clock=clock)
    oauth.configure(delay_next=0.5)  # hold the refresh open while the other 49 arrive
    async with app.router.lifespan_context(app):
        _, key = await _api_key(app)
        async with httpx.AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client:
            before = (await client.get(f"/connections/{connection_id}/token", headers=key)).json()["access_token"]
            assert _refresh_calls(oauth) == 1  # that first call was inside the window too
            clock.offset += INSIDE_WINDOW  # the new token is now inside the window as well
            responses = await asyncio.gather(
                *(client.get(f"/connections/{connection_id}/token", headers=key) for _ in range(50))
            )
    assert all(r.status_code == 200 for r in responses)
    assert all(r.headers["cache-control"] == "no-store" for r in responses)
    tokens = {r.json()["access_token"] for r in responses}
    assert _refresh_calls(oauth) == 2
    assert len(tokens) == 1 and before not in tokens
    assert httpx.get(oauth.me_url, headers={"Authorization": f"Bearer {tokens.pop()}"}).status_code == 200


async def _api_key(app: object) -> tuple[str, dict[str, str]]:
    broker = app.state.broker  # type: ignore[attr-defined]
    plaintext, _ = await broker.store.api_keys.create("test")
    return plaintext, {"Authorization": f"Bearer {plaintext}"}


def _spawn(env: dict[str, str], *args: str, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.lifecycle.worker", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=pass_fds,
    )


def _wait_ready(worker: subprocess.Popen[str]) -> None:
    assert worker.stdout is not None
    line = worker.stdout.readline()
    if line.strip() != "READY":
        _, err = worker.communicate(timeout=10)
        raise AssertionError(f"worker did not start: {line!r} {err[-2000:]}")


async def test_four_processes_refresh_once(env: dict[str, str], oauth: OAuthServer, connection_id: str) -> None:
    """4 OS processes x 10 concurrent calls on one database: one token-endpoint call, one token for all.

    Each worker opens its broker, says READY and blocks on a shared pipe; once all four are ready the test
    closes the pipe, which releases them together, so their 40 calls really overlap.
    """
    oauth.configure(delay_next=1.0)  # the first refresh stays open while the other workers' calls arrive
    offset = str(INSIDE_WINDOW.total_seconds())
    go_read, go_write = os.pipe()
    workers: list[subprocess.Popen[str]] = []
    try:
        for _ in range(4):
            args = ("--calls", "10", "--offset", offset, "--go-fd", str(go_read))
            workers.append(_spawn(env, connection_id, *args, pass_fds=(go_read,)))
        os.close(go_read)
        for worker in workers:
            _wait_ready(worker)
        os.close(go_write)  # end of file for every worker at once: all four start together
        go_write = -1
        outputs = [worker.communicate(timeout=60) for worker in workers]
    finally:
        if go_write != -1:
            os.close(go_write)
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    results = [json.loads(out.strip().splitlines()[-1]) for out, _err in outputs]
    assert [r["errors"] for r in results] == [[], [], [], []], [err[-1500:] for _o, err in outputs]
    tokens = {token for r in results for token in r["tokens"]}
    assert sum(len(r["tokens"]) for r in results) == 40
    assert _refresh_calls(oauth) == 1
    assert len(tokens) == 1
    assert httpx.get(oauth.me_url, headers={"Authorization": f"Bearer {tokens.pop()}"}).status_code == 200


async def test_twenty_forced_refreshes_never_replay_a_rotated_token(
    env: dict[str, str], oauth: OAuthServer, connection_id: str
) -> None:
    """20 forced refreshes in a row with rotation: 20 calls, no invalid_grant, and the connection still works."""
    async with open_broker(env, OffsetClock()) as broker:
        seen = set()
        for _ in range(20):
            creds = await broker.connections.refresh(connection_id)
            seen.add(creds.refresh_token)
        assert len(seen) == 20
        assert _refresh_calls(oauth) == 20
        connection, _ = await broker.connections.view(connection_id)
        assert connection.status == "active"
        result = await broker.connections.test(connection_id)
        assert result.ok, result.detail


async def test_concurrent_forced_refreshes_share_one_call(
    env: dict[str, str], oauth: OAuthServer, connection_id: str
) -> None:
    """Forced refreshes asked at the same moment in one process share one token-endpoint call."""
    oauth.configure(delay_next=0.3)
    async with open_broker(env, OffsetClock()) as broker:
        results = await asyncio.gather(*(broker.connections.refresh(connection_id) for _ in range(10)))
    assert len({r.access_token for r in results}) == 1
    assert _refresh_calls(oauth) == 1


async def test_killed_worker_leaves_the_connection_usable(
    env: dict[str, str], oauth: OAuthServer, connection_id: str
) -> None:
    """A worker SIGKILLed while it holds the refresh lease does not block the others: its lease expires."""
    # The killed worker's call is held 3 s at the server, then fails (so it rotates nothing).
    oauth.configure(delay_next=3.0, fail_next={"status": 503, "body": "busy", "content_type": "text/plain"})
    worker = _spawn(env, connection_id, "--force", "--deadline", "4")
    try:
        _wait_ready(worker)
        deadline = time.time() + 10
        while oauth.stats()["token_calls"]["refresh_token"] < 1 and time.time() < deadline:
            await asyncio.sleep(0.05)
        assert _refresh_calls(oauth) == 1, "the worker never reached the token endpoint"
        os.kill(worker.pid, signal.SIGKILL)
        worker.communicate(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    async with open_broker(env, OffsetClock(INSIDE_WINDOW), refresh_deadline=4.0) as broker:
        # The dead worker still holds a live lease: nobody else may refresh until it runs out...
        assert not await broker.store.connections.take_lease(connection_id, "probe", timedelta(seconds=1))
        # ...and then it does run out: the token call takes it over and refreshes.
        token = await broker.connections.token(connection_id)
    assert _refresh_calls(oauth) == 2
    assert httpx.get(oauth.me_url, headers={"Authorization": f"Bearer {token.access_token}"}).status_code == 200


async def test_a_failed_refresh_is_shared_not_repeated(
    env: dict[str, str], oauth: OAuthServer, connection_id: str
) -> None:
    """Three workers ask at once, the token endpoint fails: one call, and all three get the failure."""
    from authbridge.errors import UpstreamError

    oauth.configure(delay_next=0.5, fail_next={"status": 500, "body": "down", "content_type": "text/plain"})
    async with (
        open_broker(env, OffsetClock()) as one,
        open_broker(env, OffsetClock()) as two,
        open_broker(env, OffsetClock()) as three,
    ):
        results = await asyncio.gather(
            *(b.connections.refresh(connection_id) for b in (one, two, three)), return_exceptions=True
        )
        connection, _ = await one.connections.view(connection_id)
    assert all(isinstance(r, UpstreamError) for r in results), results
    assert _refresh_calls(oauth) == 1
    assert connection.refresh_failures == 1 and connection.status == "active"
