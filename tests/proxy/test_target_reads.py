"""Concurrent requests for one connection share one read of its target (a cold cache is not a stampede)."""

from __future__ import annotations

import asyncio
import contextlib
import typing
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from sqlalchemy import event

from authbridge.app import create_app
from authbridge.config import Settings
from authbridge.proxy import Proxy
from tests.proxy.conftest import Upstream

API_TOKEN = "api-TOKEN-single-flight"


@contextlib.asynccontextmanager
async def started(db_url: str, tmp_path: Path) -> AsyncIterator[typing.Any]:
    """The app, started (lifespan run, in the test's own task) on a fresh database, background loops off."""
    settings = Settings.from_env(
        {
            "AUTHBRIDGE_DATA_DIR": str(tmp_path / "data"),
            "AUTHBRIDGE_DATABASE_URL": db_url,
            "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
            "AUTHBRIDGE_BACKGROUND_TASKS": "false",
        }
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_a_cold_target_is_read_once_for_many_concurrent_requests(
    db_url: str, tmp_path: Path, upstream: Upstream
) -> None:
    async with started(db_url, tmp_path) as app:
        await _stampede(app, upstream)


async def _stampede(app: typing.Any, upstream: Upstream) -> None:
    broker = app.state.broker
    proxy: Proxy = app.state.proxy
    key, _ = await broker.create_api_key("t")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://ab") as client:
        spec = {
            "key": "sf",
            "name": "sf",
            "auth": {"type": "api_token"},
            "token": {"in": "header", "name": "X-Api-Key", "template": "{token}"},
            "request": {"base_url": f"{upstream.url}/v1"},
        }
        assert (await client.put("/integrations/sf", json=spec, headers=headers)).status_code in (200, 201)
        created = await client.post(
            "/connections",
            json={"integration": "sf", "name": "T", "credentials": {"token": API_TOKEN}},
            headers=headers,
        )
        cid = created.json()["id"]
        reads: list[str] = []

        def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
            if "connections" in statement.lower() and statement.lstrip().upper().startswith("SELECT"):
                reads.append(statement)

        engine = broker.store.engine.sync_engine
        event.listen(engine, "before_cursor_execute", seen)
        try:
            proxy.forget(cid)  # cold: the next request reads the target
            one = await client.get(f"/proxy/{cid}/echo", headers=headers)
            assert one.status_code == 200, one.text
            alone = len(reads)
            assert alone >= 1
            reads.clear()
            proxy.forget(cid)
            answers = await asyncio.gather(*(client.get(f"/proxy/{cid}/echo", headers=headers) for _ in range(20)))
        finally:
            event.remove(engine, "before_cursor_execute", seen)
    assert [a.status_code for a in answers] == [200] * 20
    assert all(a.json()["headers"]["x-api-key"] == API_TOKEN for a in answers)
    assert len(reads) == alone, reads  # one read for twenty requests, as for one
