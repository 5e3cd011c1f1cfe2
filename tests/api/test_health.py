"""``GET /health``: 200 while the database answers, 503 once it really cannot be reached. Needs no key."""

from __future__ import annotations

import shutil
import typing
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL, ClientFactory, _asyncpg_dsn, create_api_key, portal, store_of

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient


def test_health_answers_without_a_key(api_client: TestClient) -> None:
    """With the database up, /health is 200 and needs no API key."""
    response = api_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def _create_database(name: str) -> None:
    admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def _drop_database(name: str) -> None:
    admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def test_health_is_503_when_postgres_database_is_gone(make_client: ClientFactory, tmp_path: Path) -> None:
    """Dropping the PostgreSQL database under a running app turns /health into 503 and management routes into 503."""
    name = f"ab_health_{uuid.uuid4().hex[:12]}"
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    client = make_client({"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data")})  # a healthy neighbour on SQLite
    portal(client).call(_create_database, name)
    try:
        doomed = make_client({"AUTHBRIDGE_DATA_DIR": str(tmp_path / "pg"), "AUTHBRIDGE_DATABASE_URL": url})
        key = create_api_key(doomed)
        assert doomed.get("/health").status_code == 200
        portal(client).call(_drop_database, name)
        response = doomed.get("/health")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": "unreachable"}
        managed = doomed.get("/integrations", headers={"Authorization": f"Bearer {key}"})
        assert managed.status_code == 503
        assert managed.json()["error"]["code"] == "store_error"
        assert client.get("/health").status_code == 200
    finally:
        portal(client).call(_drop_database, name)


def test_health_is_503_when_the_sqlite_file_is_gone(make_client: ClientFactory, tmp_path: Path) -> None:
    """Removing the SQLite file's directory and dropping pooled connections turns /health into 503."""
    data = tmp_path / "data"
    db_dir = tmp_path / "db"
    client = make_client({"AUTHBRIDGE_DATA_DIR": str(data), "AUTHBRIDGE_DATABASE_URL": f"sqlite:///{db_dir}/ab.db"})
    assert client.get("/health").status_code == 200
    shutil.rmtree(db_dir)
    store = store_of(client)
    portal(client).call(store.engine.dispose)  # the pool's open handle would still reach the unlinked file
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
