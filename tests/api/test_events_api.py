"""``GET /events`` on SQLite and PostgreSQL: API key required, filters, newest first, never a token.

Webhook delivery of the same events is tested in tests/broker/test_webhooks.py.
"""

from __future__ import annotations

import typing

from tests.conftest import portal, store_of

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from authbridge.store import EventRecord


def _add(client: TestClient, type: str, **fields: typing.Any) -> EventRecord:
    store = store_of(client)

    async def add() -> EventRecord:
        return await store.events.add(type, **fields)

    return portal(client).call(add)


def _ids(client: TestClient, headers: dict[str, str], **params: typing.Any) -> list[int]:
    response = client.get("/events", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_events_need_an_api_key(api_client: TestClient) -> None:
    """Without a valid API key, /events is 401."""
    assert api_client.get("/events").status_code == 401
    assert api_client.get("/events", headers={"Authorization": "Bearer ab_nope"}).status_code == 401


def test_events_are_listed_newest_first_with_their_fields(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """Each item has id, type, connection_id, integration, data and created_at; the newest comes first."""
    first = _add(api_client, "connection.created", connection_id="a" * 32, integration_key="acme", data={"name": "DEV"})
    second = _add(api_client, "connection.refreshed", connection_id="a" * 32, integration_key="acme")
    items = api_client.get("/events", headers=api_headers).json()["items"]
    assert [i["id"] for i in items] == [second.id, first.id]
    assert items[1] == {
        "id": first.id,
        "type": "connection.created",
        "connection_id": "a" * 32,
        "integration": "acme",
        "data": {"name": "DEV"},
        "created_at": first.created_at.isoformat(),
    }


def test_events_filters(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """type, connection_id, integration, since and limit each narrow the list."""
    one = _add(api_client, "connection.created", connection_id="a" * 32, integration_key="acme")
    two = _add(api_client, "connection.refreshed", connection_id="a" * 32, integration_key="acme")
    three = _add(api_client, "connection.created", connection_id="b" * 32, integration_key="other")
    four = _add(api_client, "integration.updated", integration_key="other")
    assert _ids(api_client, api_headers, type="connection.created") == [three.id, one.id]
    assert _ids(api_client, api_headers, connection_id="a" * 32) == [two.id, one.id]
    assert _ids(api_client, api_headers, integration="other") == [four.id, three.id]
    assert _ids(api_client, api_headers, integration="other", type="connection.created") == [three.id]
    assert _ids(api_client, api_headers, limit=2) == [four.id, three.id]
    assert _ids(api_client, api_headers, since=three.created_at.isoformat()) == [four.id, three.id]
    naive = three.created_at.replace(tzinfo=None).isoformat()  # no offset: UTC
    assert _ids(api_client, api_headers, since=naive) == [four.id, three.id]
    assert _ids(api_client, api_headers, since="2999-01-01T00:00:00Z") == []


def test_events_bad_queries_are_422(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """A limit outside 1-500 or a since that is not a date is refused with the field named."""
    for params in ({"limit": 0}, {"limit": 501}, {"since": "yesterday"}):
        response = api_client.get("/events", headers=api_headers, params=params)
        assert response.status_code == 422, params
        assert response.json()["error"]["errors"][0]["path"] == f"query.{next(iter(params))}"
    assert api_client.get("/events", headers=api_headers, params={"limit": 500}).status_code == 200


def test_events_from_the_api_are_listed_without_secrets(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """Saving an integration through the API records an event; token-like data is masked in the listing."""
    spec = {"key": "acme", "name": "Acme", "auth": {"type": "api_token"}}
    assert api_client.post("/integrations", headers=api_headers, json=spec).status_code == 201
    _add(api_client, "connection.refreshed", integration_key="acme", data={"refresh_token": "rt-SECRET"})
    response = api_client.get("/events", headers=api_headers, params={"integration": "acme"})
    assert "SECRET" not in response.text
    assert [(i["type"], i["data"]) for i in response.json()["items"]] == [
        ("connection.refreshed", {"refresh_token": "***"}),
        ("integration.created", {"version": 1}),
    ]
