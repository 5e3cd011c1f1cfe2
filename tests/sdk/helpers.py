"""What the Bridge's tests share: a started Bridge on a fresh database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from authbridge import Bridge
from authbridge.config import Settings


@contextlib.asynccontextmanager
async def open_bridge(tmp_path: Path, db_url: str | None = None) -> AsyncIterator[Bridge]:
    """A started Bridge that may call loopback servers over http, on ``db_url`` (default: SQLite in ``tmp_path``)."""
    settings = Settings.from_env(
        {"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data"), "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true"}
    )
    async with Bridge.open(db_url or f"sqlite+aiosqlite:///{tmp_path / 'ab.db'}", settings=settings) as opened:
        yield opened
