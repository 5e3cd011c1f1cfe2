"""Shared fixtures: a clean environment, and a database per test on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import typing
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from authbridge.app import create_app
from authbridge.config import Settings
from authbridge.store import KeyRing, Store
from authbridge.testing import FakeClock, memory_key_ring

with warnings.catch_warnings():
    # Starlette deprecates its TestClient on httpx in favour of httpx2, which the project does not
    # depend on yet; only this import's warning is silenced, every other warning stays an error.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

pytest_plugins = ["tests.servers.fixtures"]

#: The PostgreSQL server the suite creates its databases on. CI points this at a fresh database;
#: locally the default is the machine's PostgreSQL. Unreachable means the run fails, never skips.
POSTGRES_URL = os.environ.get("AUTHBRIDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(autouse=True)
def clean_environ() -> Iterator[None]:
    """Each test starts without AUTHBRIDGE_* variables (httpx's clean_environ habit)."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("AUTHBRIDGE_"):
            del os.environ[name]
    yield
    os.environ.clear()
    os.environ.update(saved)


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'authbridge.db'}"
        return
    name = f"ab_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock()


@pytest.fixture
def keyring() -> KeyRing:
    """A fresh in-memory key ring."""
    return memory_key_ring("k1")


@pytest.fixture
async def store(db_url: str, keyring: KeyRing, clock: FakeClock) -> AsyncIterator[Store]:
    """A migrated store on a fresh database (both backends)."""
    opened = await Store.open(db_url, keyring, clock=clock)
    try:
        yield opened
    finally:
        await opened.close()


def sqlite_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment variables for a service on a SQLite file in ``tmp_path``."""
    return {"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data"), **extra}


@pytest.fixture
def app_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment variables for a service on the ``db_url`` database, its data dir in ``tmp_path``."""
    return {"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data"), "AUTHBRIDGE_DATABASE_URL": db_url}


class ClientFactory(typing.Protocol):
    """Builds and starts a TestClient on ``create_app(Settings.from_env(env))``."""

    def __call__(self, env: typing.Mapping[str, str], *, raise_server_exceptions: bool = True) -> TestClient: ...


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    """A factory of started TestClients (lifespan run), all stopped after the test."""
    with contextlib.ExitStack() as stack:

        def make(env: typing.Mapping[str, str], *, raise_server_exceptions: bool = True) -> TestClient:
            app = create_app(Settings.from_env(env))
            return stack.enter_context(TestClient(app, raise_server_exceptions=raise_server_exceptions))

        yield make


class ClockedClientFactory(typing.Protocol):
    """Builds and starts a TestClient on ``create_app(Settings.from_env(env), clock=clock)``."""

    def __call__(self, env: typing.Mapping[str, str], *, clock: FakeClock) -> TestClient: ...


@pytest.fixture
def make_clocked_client() -> Iterator[ClockedClientFactory]:
    """Like ``make_client``, with the app (and its store) on a clock the test moves."""
    with contextlib.ExitStack() as stack:

        def make(env: typing.Mapping[str, str], *, clock: FakeClock) -> TestClient:
            return stack.enter_context(TestClient(create_app(Settings.from_env(env), clock=clock)))

        yield make


@pytest.fixture
def api_client(
    make_client: typing.Callable[[typing.Mapping[str, str]], TestClient], app_env: dict[str, str]
) -> TestClient:
    """A started TestClient on a fresh database (both backends)."""
    return make_client(app_env)


def portal(client: TestClient) -> BlockingPortal:
    """The started client's portal: runs coroutines on the app's event loop."""
    assert client.portal is not None, "start the client first (use it as a context manager)"
    return client.portal


def store_of(client: TestClient) -> Store:
    """The store the started app's lifespan opened."""
    return typing.cast(Store, client.app.state.broker.store)  # type: ignore[attr-defined]


def create_api_key(client: TestClient, name: str = "test") -> str:
    """Create an API key through the running app's store; return the key itself."""
    plaintext, _record = portal(client).call(store_of(client).api_keys.create, name)
    return plaintext


@pytest.fixture
def api_headers(api_client: TestClient) -> dict[str, str]:
    """An ``Authorization: Bearer`` header with a fresh API key of ``api_client``'s app."""
    return {"Authorization": f"Bearer {create_api_key(api_client)}"}


@pytest.fixture
def runner() -> CliRunner:
    """A Click runner for the ``authbridge`` command (stdout and stderr kept apart)."""
    return CliRunner()


__all__: typing.Sequence[str] = ()
