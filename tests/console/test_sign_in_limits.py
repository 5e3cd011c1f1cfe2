"""Console sign-in: rate limits (per address and overall), bounded password hashing, sessions ended on the server."""

from __future__ import annotations

import re
import typing
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import pytest

from authbridge.console.limits import SignInLimiter
from authbridge.console.session import COOKIE
from authbridge.store import Store
from authbridge.store.admin import HASHING_AT_ONCE
from authbridge.testing import FakeClock
from tests.conftest import ClientFactory, create_api_key, portal, sqlite_env, store_of
from tests.servers.authbridge import running_authbridge

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def _sign_in(client: TestClient | httpx.Client, secret: str) -> httpx.Response:
    page = client.get("/console/sign-in")
    return client.post("/console/sign-in", data={"csrf": _csrf(page.text), "secret": secret})


# -- the limiter's rules ------------------------------------------------------------------------


def test_each_address_has_its_own_bucket() -> None:
    """Three a minute from one address: the fourth waits 20 s; another address is not held up; time refills."""
    ticks = Ticks()
    limiter = SignInLimiter(per_address=3, overall=100, clock=ticks)
    assert [limiter.attempt("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.attempt("a") == pytest.approx(20.0)
    assert limiter.attempt("b") == 0.0
    ticks.now += 19.0
    assert limiter.attempt("a") == pytest.approx(1.0)  # a refused attempt is not counted
    ticks.now += 1.0
    assert limiter.attempt("a") == 0.0
    assert limiter.attempt("a") > 0


def test_the_overall_bucket_holds_across_addresses() -> None:
    """Many addresses, one attempt each: the overall limit refuses past it, whatever the address."""
    ticks = Ticks()
    limiter = SignInLimiter(per_address=10, overall=5, clock=ticks)
    assert [limiter.attempt(f"10.0.0.{i}") for i in range(5)] == [0.0] * 5
    assert limiter.attempt("10.0.0.99") == pytest.approx(12.0)
    ticks.now += 12.0
    assert limiter.attempt("10.0.0.99") == 0.0


def test_retry_after_is_whole_seconds() -> None:
    """Retry-After is rounded up to whole seconds, never 0."""
    assert [SignInLimiter.retry_after(w) for w in (0.01, 1.0, 1.2, 20.0)] == [1, 1, 2, 20]


# -- through the app ------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A SQLite service without background tasks, three sign-ins a minute per address."""
    return sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false", AUTHBRIDGE_SIGN_IN_PER_MINUTE="3")


def _client(make_client: ClientFactory, env: dict[str, str]) -> TestClient:
    client = make_client(env)
    client.follow_redirects = False
    return client


def test_too_many_sign_ins_get_429_with_retry_after(make_client: ClientFactory, env: dict[str, str]) -> None:
    """After three attempts in a minute the fourth, even with the right key, is 429 and starts no session."""
    client = _client(make_client, env)
    key = create_api_key(client)
    assert [_sign_in(client, "wrong-key").status_code for _ in range(3)] == [401, 401, 401]
    refused = _sign_in(client, key)
    assert refused.status_code == 429
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 20  # a token comes back every 20 s
    assert f"Too many sign-in attempts. Wait {wait} seconds, then try again." in refused.text
    assert COOKIE not in client.cookies


def test_a_copied_cookie_stops_working_at_sign_out(make_client: ClientFactory, env: dict[str, str]) -> None:
    """Sign-out ends the session on the server: a copy of the cookie taken before is refused after."""
    client = _client(make_client, env)
    assert _sign_in(client, create_api_key(client)).status_code == 303
    copied = client.cookies[COOKIE]
    thief = _client(make_client, env)
    thief.cookies.set(COOKIE, copied, path="/console")
    assert thief.get("/console/integrations").status_code == 200

    csrf = _csrf(client.get("/console/integrations").text)
    assert client.post("/console/sign-out", data={"csrf": csrf}).status_code == 303
    for who in (client, thief):
        who.cookies.set(COOKIE, copied, path="/console")
        answer = who.get("/console/integrations")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/sign-in")


def test_sessions_are_stored_by_hash_and_expire(make_client: ClientFactory, env: dict[str, str]) -> None:
    """The table holds the session id's SHA-256, never the id; a session past its time is not live."""
    client = _client(make_client, env)
    _sign_in(client, create_api_key(client))
    sid = client.cookies[COOKIE]
    store = store_of(client)

    async def hashes() -> list[str]:
        from sqlalchemy import text

        async with store.engine.connect() as conn:
            return list((await conn.execute(text("SELECT sid_hash FROM console_sessions"))).scalars())

    stored = portal(client).call(hashes)
    assert len(stored) == 1 and len(stored[0]) == 64 and stored[0] not in sid


async def test_session_rows_end_expire_and_are_swept(db_url: str, keyring: typing.Any, clock: FakeClock) -> None:
    """start/live/end on both databases; an expired session is not live and is swept at the next start."""
    store = await Store.open(db_url, keyring, clock=clock)
    try:
        sessions = store.console_sessions
        await sessions.start("one", "key:1", clock() + timedelta(hours=1))
        await sessions.start("two", "key:1", clock() + timedelta(hours=12))
        assert await sessions.live("one") and await sessions.live("two") and not await sessions.live("three")
        await sessions.end("two")
        assert not await sessions.live("two")
        clock.advance(hours=2)
        assert not await sessions.live("one")
        await sessions.start("four", "admin:x", clock() + timedelta(hours=1))
        async with store.engine.connect() as conn:
            from sqlalchemy import text

            count = (await conn.execute(text("SELECT count(*) FROM console_sessions"))).scalar_one()
        assert count == 1
    finally:
        await store.close()


async def test_password_hashing_is_bounded(store: Store) -> None:
    """Eight sign-ins with the admin password at once: at most HASHING_AT_ONCE scrypt runs, the others wait.

    The test holds every slot of the limiter until all eight are queued on it, so the race is real
    whatever the machine's speed; then it lets them go and watches how many run at once.
    """
    await store.admin.set_password("correct horse battery staple")
    limiter = store.admin.hashing
    peak_running = 0
    done = anyio.Event()
    results: list[str | None] = []
    holders = [object() for _ in range(HASHING_AT_ONCE)]

    async def verify() -> None:
        results.append(await store.admin.verify("correct horse battery staple"))

    async def watch() -> None:
        nonlocal peak_running
        while not done.is_set():
            peak_running = max(peak_running, int(limiter.borrowed_tokens))
            await anyio.sleep(0)

    for holder in holders:
        await limiter.acquire_on_behalf_of(holder)
    with anyio.fail_after(60):  # a safety net for the run, not a measurement
        async with anyio.create_task_group() as watcher:
            async with anyio.create_task_group() as group:
                for _ in range(8):
                    group.start_soon(verify)
                while limiter.statistics().tasks_waiting < 8:
                    await anyio.sleep(0.01)
                assert results == []  # all eight wait for a slot
                watcher.start_soon(watch)
                for holder in holders:
                    limiter.release_on_behalf_of(holder)
            done.set()
    assert len(results) == 8 and all(results)
    assert peak_running == HASHING_AT_ONCE == 2


# -- a real server --------------------------------------------------------------------------------


def test_a_real_server_limits_sign_ins_and_ends_sessions(tmp_path: Path) -> None:
    """``authbridge run``: a copied cookie dies at sign-out; the fourth attempt in a minute is 429."""
    with running_authbridge(tmp_path, AUTHBRIDGE_SIGN_IN_PER_MINUTE="3") as server:
        with httpx.Client(base_url=server.url) as browser, httpx.Client(base_url=server.url) as thief:
            assert _sign_in(browser, server.admin_password).status_code == 303
            thief.cookies.set(COOKIE, browser.cookies[COOKIE], domain="127.0.0.1", path="/console")
            assert thief.get("/console/integrations").status_code == 200
            csrf = _csrf(browser.get("/console/integrations").text)
            assert browser.post("/console/sign-out", data={"csrf": csrf}).status_code == 303
            stolen = thief.get("/console/integrations")
            assert stolen.status_code == 303 and stolen.headers["location"].startswith("/console/sign-in")

            assert [_sign_in(browser, "wrong password!").status_code for _ in range(2)] == [401, 401]
            refused = _sign_in(browser, server.admin_password)
            assert refused.status_code == 429 and refused.headers["retry-after"].isdigit()
            assert "Too many sign-in attempts" in refused.text
