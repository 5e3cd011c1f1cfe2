"""Shared fixtures: a clean environment, and a database per test on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import typing
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from authbridge.store import KeyRing, Store
from authbridge.testing import FakeClock, memory_key_ring

#: The PostgreSQL server the suite creates its databases on. CI points this at a fresh database;
#: locally the default is the machine's PostgreSQL. Unreachable means the run fails, never skips.
POSTGRES_URL = os.environ.get(
    "AUTHBRIDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


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


__all__: typing.Sequence[str] = ()
