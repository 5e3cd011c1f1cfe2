"""List endpoints that scale: ``GET /events`` pages by cursor with a time range; ``GET /connections`` searches.

The console's pages over the same queries are tested in ``tests/console/test_new_user_browser.py``.
"""

from __future__ import annotations

import typing
from datetime import UTC, datetime, timedelta

from tests.conftest import portal, store_of

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

OPEN = {"key": "open", "name": "Open", "auth": {"type": "none"}, "request": {"base_url": "https://open.example"}}


def test_events_page_by_cursor_to_the_end(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """Following next_cursor visits every event once, newest first; the last page has next_cursor null."""
    store = store_of(api_client)

    async def add() -> None:
        for n in range(25):
            await store.events.add("connection.created", data={"n": n})

    portal(api_client).call(add)
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, typing.Any] = {"limit": 10, "type": "connection.created"}
        if cursor:
            params["cursor"] = cursor
        body = api_client.get("/events", headers=api_headers, params=params).json()
        seen += [item["id"] for item in body["items"]]
        cursor, pages = body["next_cursor"], pages + 1
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 25 and seen == sorted(seen, reverse=True)
    # Older clients that read only "items" see the same first page as before.
    assert [i["id"] for i in api_client.get("/events", headers=api_headers, params={"limit": 10}).json()["items"]] == (
        seen[:10]
    )


def test_events_time_range_and_hostile_cursors(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """since/until bound the times; a cursor this server did not give is a 422 naming the field."""
    store = store_of(api_client)
    portal(api_client).call(lambda: store.events.add("connection.created"))
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert api_client.get("/events", headers=api_headers, params={"until": future}).json()["items"]
    assert api_client.get("/events", headers=api_headers, params={"since": future}).json()["items"] == []
    past = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert api_client.get("/events", headers=api_headers, params={"until": past}).json()["items"] == []
    for bad in ("abc", "-1", "9" * 19, "1;DROP TABLE events"):
        response = api_client.get("/events", headers=api_headers, params={"cursor": bad})
        assert response.status_code == 422, bad
        assert "cursor" in response.text


def test_connections_are_searched_by_name_or_id(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """q matches part of a name in any case, or a whole id; LIKE wildcards in q are plain characters."""
    assert api_client.post("/integrations", json=OPEN, headers=api_headers).status_code == 201
    ids = {}
    for name in ("Production EU", "production US", "100% staging", "dev_box"):
        created = api_client.post(
            "/connections", json={"integration": "open", "name": name, "parameters": {}}, headers=api_headers
        )
        assert created.status_code == 201, created.text
        ids[name] = created.json()["id"]

    def names(**params: str) -> set[str]:
        response = api_client.get("/connections", headers=api_headers, params=params)
        assert response.status_code == 200, response.text
        return {item["name"] for item in response.json()["items"]}

    assert names(q="PRODUCTION") == {"Production EU", "production US"}
    assert names(q=ids["dev_box"]) == {"dev_box"}
    assert names(q=ids["dev_box"][:6]) == set()  # an id matches whole, not by prefix
    assert names(q="%") == {"100% staging"}
    assert names(q="_") == {"dev_box"}
    assert names(q="' OR 1=1 --") == set()
    assert api_client.get("/connections", headers=api_headers, params={"q": "x" * 256}).status_code == 422
