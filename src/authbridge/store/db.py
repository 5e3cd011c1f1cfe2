"""The async engine (SQLite by default, PostgreSQL via asyncpg) and Alembic migrations."""

from __future__ import annotations

import functools
import typing
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from authbridge.errors import StoreError

__all__ = ["create_engine", "migrate", "migrations_at_head", "ping", "redact_url"]

_MIGRATIONS = Path(__file__).parent / "migrations"


def redact_url(url: str) -> str:
    """The database URL with any password replaced, for messages and logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Build the async engine. SQLite gets WAL, foreign keys and a busy timeout; its directory is created."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: typing.Any, _record: typing.Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_async_engine(url, echo=echo, pool_pre_ping=True)


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply the Alembic migrations up to ``revision`` on this engine."""

    def _upgrade(connection: Connection) -> None:
        command.upgrade(_alembic_config(connection), revision)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
    except (SQLAlchemyError, OSError) as exc:
        raise StoreError(
            f"cannot migrate the database at {redact_url(str(engine.url))}: {type(exc).__name__}"
        ) from None


@functools.cache
def _heads() -> frozenset[str]:
    """The head revisions of the shipped migrations (read from the scripts once per process)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


async def migrations_at_head(engine: AsyncEngine) -> bool:
    """Whether the database's Alembic revision is the head this code ships (a database error propagates)."""

    def _current(connection: Connection) -> frozenset[str]:
        return frozenset(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as conn:
        return await conn.run_sync(_current) == _heads()


async def ping(engine: AsyncEngine) -> bool:
    """Whether the database answers a trivial query."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError):
        return False
    return True
