"""Connect sessions, connection owners and tags, API-key scopes and the token-read audit (SQLite and PostgreSQL)."""

from __future__ import annotations

import typing
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text

from authbridge.store.models import ConnectSessionRow
from tests.conftest import ClientFactory, portal, store_of

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

ACME: dict[str, typing.Any] = {
    "key": "acme",
    "name": "Acme CRM",
    "parameters": [
        {"name": "serverName", "required": True, "pattern": "^[a-z0-9-]+$"},
        {"name": "region", "enum": ["eu", "us"]},
        {"name": "apiSecret", "secret": True},
    ],
    "auth": {"type": "api_token"},
    "request": {"base_url": "https://{serverName}.acme.example/api"},
}
GIPHY: dict[str, typing.Any] = {"key": "giphy", "name": "Giphy", "auth": {"type": "api_token"}}
FIXED_SECRET = "fixed-Secret-Value-77a1"


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    env = {**app_env, "AUTHBRIDGE_ALLOWED_RETURN_ORIGINS": "https://app.example"}
    started = make_client(env)
    admin = key_with(started, "admin")
    for spec in (ACME, GIPHY):
        assert started.post("/integrations", json=spec, headers=admin).status_code == 201
    return started


def key_with(client: TestClient, *scopes: str) -> dict[str, str]:
    broker = client.app.state.broker  # type: ignore[attr-defined]
    plaintext, _record = portal(client).call(broker.create_api_key, "-".join(scopes), list(scopes))
    return {"Authorization": f"Bearer {plaintext}"}


def connect(client: TestClient, headers: dict[str, str], name: str, **extra: typing.Any) -> dict[str, typing.Any]:
    body = {"integration": "acme", "name": name, "parameters": {"serverName": "dev"}, "credentials": {"token": "t"}}
    response = client.post("/connections", json={**body, **extra}, headers=headers)
    assert response.status_code == 201, response.text
    return typing.cast(dict[str, typing.Any], response.json())


def session_body(**extra: typing.Any) -> dict[str, typing.Any]:
    return {
        "end_user": {"id": "u-42", "email": "ann@customer.example", "display_name": "Ann"},
        "organization": {"id": "org-7", "display_name": "Customer Inc"},
        "allowed_integrations": ["acme", "giphy"],
        "parameters": {"acme": {"serverName": "customer-prod", "apiSecret": FIXED_SECRET}},
        "tags": {"plan": "pro"},
        "return_to": "https://app.example/settings/integrations",
        **extra,
    }


def stored_sessions(client: TestClient) -> list[ConnectSessionRow]:
    async def read() -> list[ConnectSessionRow]:
        async with store_of(client).ctx.session() as session:
            return list((await session.scalars(select(ConnectSessionRow))).all())

    return portal(client).call(read)


def flush_audit(client: TestClient) -> None:
    broker = client.app.state.broker  # type: ignore[attr-defined]
    portal(client).call(broker.audit.flush)


# -- scopes ------------------------------------------------------------------------------------


def test_each_scope_opens_only_its_routes(client: TestClient) -> None:
    """A key reaches what its scopes name and gets 403 naming the missing scope elsewhere; admin reaches all."""
    admin = key_with(client, "admin")
    made = connect(client, admin, "DEV")
    connect_only = key_with(client, "connect")
    reader = key_with(client, "connections:read")
    writer = key_with(client, "connections:write")
    token_only = key_with(client, "token")

    assert client.post("/connect/sessions", json=session_body(), headers=connect_only).status_code == 201
    for method, path in [
        ("GET", "/connections"),
        ("GET", f"/connections/{made['id']}"),
        ("GET", f"/connections/{made['id']}/token"),
        ("GET", "/integrations"),
        ("GET", "/events"),
    ]:
        refused = client.request(method, path, headers=connect_only)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["code"] == "insufficient_scope"
    assert "'connections:read'" in client.get("/connections", headers=connect_only).json()["error"]["message"]
    assert "'token'" in client.get(f"/connections/{made['id']}/token", headers=reader).json()["error"]["message"]
    assert client.get("/connections", headers=reader).status_code == 200
    assert client.post("/connections", json={"integration": "giphy", "name": "x"}, headers=reader).status_code == 403
    assert client.post("/connect/sessions", json=session_body(), headers=reader).status_code == 403
    assert client.delete(f"/connections/{made['id']}", headers=token_only).status_code == 403
    assert client.get(f"/connections/{made['id']}/token", headers=token_only).status_code == 200
    assert client.get("/integrations", headers=writer).status_code == 403
    assert client.delete(f"/connections/{made['id']}", headers=writer).status_code == 200
    # a wrong key is still 401, whatever scope the route wants
    assert client.get("/connections", headers={"Authorization": "Bearer ab_wrong"}).status_code == 401


def test_unknown_scope_is_refused(client: TestClient) -> None:
    """Scopes come from a closed list; a typo is an error naming the accepted ones."""
    broker = client.app.state.broker  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="unknown scope 'proxies'; scopes are admin, connect"):
        portal(client).call(broker.create_api_key, "x", ["proxies"])


# -- owners, filters, pages --------------------------------------------------------------------


def test_owner_and_tags_are_stored_returned_and_carried_by_events(client: TestClient) -> None:
    """end_user, organization and tags come back from the API and ride on every event of the connection."""
    admin = key_with(client, "admin")
    made = connect(
        client,
        admin,
        "DEV",
        end_user={"id": "u-1", "email": "a@b.example"},
        organization={"id": "org-1", "display_name": "Org One"},
        tags={"plan": "pro", "env": "dev"},
    )
    assert made["end_user"] == {"id": "u-1", "email": "a@b.example"}
    assert made["organization"] == {"id": "org-1", "display_name": "Org One"}
    assert made["tags"] == {"plan": "pro", "env": "dev"}
    assert client.get(f"/connections/{made['id']}", headers=admin).json()["tags"] == {"plan": "pro", "env": "dev"}
    client.delete(f"/connections/{made['id']}", headers=admin)
    events = client.get("/events", params={"connection_id": made["id"]}, headers=admin).json()["items"]
    assert [e["type"] for e in events] == ["connection.deleted", "connection.created"]
    for event in events:
        assert event["data"]["end_user"] == {"id": "u-1", "email": "a@b.example"}
        assert event["data"]["organization"]["id"] == "org-1"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"end_user": {"id": "u" * 256}}, "end_user"),
        ({"end_user": {"id": ""}}, "end_user"),
        ({"end_user": {"email": "a@b.example"}}, "end_user"),
        ({"end_user": {"id": "u", "role": "admin"}}, "end_user"),
        ({"tags": {f"k{i}": "v" for i in range(51)}}, "tags"),
        ({"tags": {"a:b": "v"}}, "tags"),
        ({"tags": {"k": "v" * 256}}, "tags"),
        ({"organization": {"display_name": "no id"}}, "organization"),
    ],
)
def test_bad_owner_fields_are_refused_and_nothing_is_stored(
    client: TestClient, extra: dict[str, typing.Any], field: str
) -> None:
    admin = key_with(client, "admin")
    body = {"integration": "acme", "name": "x", "parameters": {"serverName": "dev"}, "credentials": {"token": "t"}}
    refused = client.post("/connections", json={**body, **extra}, headers=admin)
    assert refused.status_code == 422, refused.text
    assert field in refused.text
    assert client.get("/connections", headers=admin).json()["items"] == []


def test_filters_and_cursor_pages(client: TestClient) -> None:
    """Every filter narrows the list; pages of ``limit`` walk all of them once, in creation order."""
    admin = key_with(client, "admin")
    made = [
        connect(
            client,
            admin,
            f"C{i}",
            end_user={"id": f"u-{i % 2}"},
            organization={"id": f"org-{i % 3}"},
            tags={"plan": "pro" if i < 3 else "free", "n": str(i)},
        )
        for i in range(7)
    ]
    ids = [m["id"] for m in made]

    def listed(**params: typing.Any) -> list[str]:
        response = client.get("/connections", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert listed() == ids
    assert listed(end_user_id="u-1") == [ids[i] for i in (1, 3, 5)]
    assert listed(organization_id="org-0") == [ids[i] for i in (0, 3, 6)]
    assert listed(tag="plan:pro") == ids[:3]
    assert listed(tag=["plan:free", "n:4"]) == [ids[4]]
    assert listed(tag="plan:none") == []
    assert listed(status="active", integration="acme", end_user_id="u-0", tag="plan:free") == [ids[4], ids[6]]
    assert listed(integration="giphy") == []

    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, typing.Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/connections", params=params, headers=admin).json()
        seen += [c["id"] for c in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids and pages == 3


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "MjAyNi0xMi0wM1QwODowMDowMHxhYmM"},  # a date with no zone
        {"cursor": "x" * 201},
        {"limit": 0},
        {"limit": 1001},
        {"tag": "no-colon"},
    ],
)
def test_bad_list_parameters_are_clear_errors(client: TestClient, params: dict[str, typing.Any]) -> None:
    admin = key_with(client, "admin")
    refused = client.get("/connections", params=params, headers=admin)
    assert refused.status_code == 422, refused.text
    assert next(iter(params)) in refused.text


# -- connect sessions --------------------------------------------------------------------------


def test_create_a_session(client: TestClient) -> None:
    """201 with a one-time token (256 bits, stored only as its hash), the connect URL and the expiry."""
    connect_key = key_with(client, "connect")
    before = datetime.now().astimezone()
    created = client.post("/connect/sessions", json=session_body(ttl="2h"), headers=connect_key)
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    token = body["token"]
    assert token.startswith("abcs_") and len(token) >= 5 + 43  # 32 random bytes, base64url
    assert body["connect_url"] == f"http://127.0.0.1:8000/connect/{token}"
    expires = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(hours=2) - timedelta(minutes=1) < expires < before + timedelta(hours=2, minutes=1)

    (row,) = stored_sessions(client)
    assert row.token_hash != token and token not in row.token_hash
    assert row.end_user == {"id": "u-42", "email": "ann@customer.example", "display_name": "Ann"}
    assert row.allowed_integrations == ["acme", "giphy"]
    assert row.parameters is not None and FIXED_SECRET not in row.parameters  # encrypted
    record = portal(client).call(store_of(client).connect_sessions.find, token)
    assert record is not None and record.parameters["acme"]["apiSecret"] == FIXED_SECRET
    assert FIXED_SECRET not in repr(record)

    def dump() -> str:
        async def read() -> str:
            async with store_of(client).ctx.session() as session:
                rows = (await session.execute(text("SELECT * FROM events"))).all()
                return repr(rows)

        return portal(client).call(read)

    events = dump()
    assert "connect_session.created" in events and token not in events and FIXED_SECRET not in events


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"allowed_integrations": None}, "allowed_integrations"),
        ({"reconnect": "0" * 32}, "give either allowed_integrations or reconnect"),
        ({"reconnect": "0" * 32, "allowed_integrations": None, "parameters": {}}, "reconnect"),
        ({"allowed_integrations": []}, "allowed_integrations"),
        ({"allowed_integrations": ["nope"]}, "allowed_integrations"),
        ({"ttl": "25h"}, "ttl"),
        ({"ttl": "5s"}, "ttl"),
        ({"ttl": "soon"}, "ttl"),
        ({"return_to": "https://evil.example/x"}, "return_to"),
        ({"parameters": {"acme": {"serverName": "../evil"}}}, "parameters.acme.serverName"),
        ({"parameters": {"acme": {"region": "mars"}}}, "parameters.acme.region"),
        ({"parameters": {"acme": {"nope": "x"}}}, "parameters.acme.nope"),
        ({"parameters": {"other": {"x": "y"}}}, "parameters.other"),
        ({"end_user": None}, "end_user"),
        ({"end_user": {"id": "x" * 256}}, "end_user"),
    ],
)
def test_bad_session_requests_are_refused_and_nothing_is_stored(
    client: TestClient, change: dict[str, typing.Any], path: str
) -> None:
    body = session_body(**change)
    refused = client.post("/connect/sessions", json=body, headers=key_with(client, "connect"))
    assert refused.status_code == 422, refused.text
    assert path in refused.text
    assert stored_sessions(client) == []


def test_reconnect_sessions(client: TestClient) -> None:
    """A reconnect session names one connection; one belonging to another end user is refused."""
    admin = key_with(client, "admin")
    mine = connect(client, admin, "DEV", end_user={"id": "u-42"})
    theirs = connect(client, admin, "QA", end_user={"id": "u-99"})
    body = session_body(allowed_integrations=None, reconnect=mine["id"], parameters={})
    created = client.post("/connect/sessions", json=body, headers=admin)
    assert created.status_code == 201, created.text
    record = portal(client).call(store_of(client).connect_sessions.find, created.json()["token"])
    assert record is not None and record.reconnect_id == mine["id"] and record.allowed_integrations is None

    refused = client.post("/connect/sessions", json={**body, "reconnect": theirs["id"]}, headers=admin)
    assert refused.status_code == 422 and "another end user" in refused.text


def test_end_a_session(client: TestClient) -> None:
    """DELETE ends it at once; an unknown token is 404; neither shows the token in events."""
    connect_key = key_with(client, "connect")
    token = client.post("/connect/sessions", json=session_body(), headers=connect_key).json()["token"]
    ended = client.delete(f"/connect/sessions/{token}", headers=connect_key)
    assert ended.status_code == 200 and ended.json()["ended"] is True
    store = store_of(client)
    record = portal(client).call(store.connect_sessions.find, token)
    assert record is not None and record.state(datetime.now().astimezone()) == "ended"
    assert portal(client).call(store.connect_sessions.complete, record.id, "c" * 32) is False
    assert client.delete("/connect/sessions/abcs_unknown", headers=connect_key).status_code == 404
    events = client.get("/events", headers=key_with(client, "admin")).json()["items"]
    assert [e["type"] for e in events if e["type"].startswith("connect_session")] == [
        "connect_session.ended",
        "connect_session.created",
    ]
    assert token not in str(events)


def test_a_session_completes_once(client: TestClient) -> None:
    """``complete`` succeeds for the first connection only."""
    token = client.post("/connect/sessions", json=session_body(), headers=key_with(client, "connect")).json()["token"]
    store = store_of(client)
    record = portal(client).call(store.connect_sessions.find, token)
    assert record is not None
    assert portal(client).call(store.connect_sessions.complete, record.id, "a" * 32) is True
    assert portal(client).call(store.connect_sessions.complete, record.id, "b" * 32) is False
    used = portal(client).call(store.connect_sessions.find, token)
    assert used is not None and used.connection_id == "a" * 32
    assert used.state(datetime.now().astimezone()) == "used"


# -- audit -------------------------------------------------------------------------------------


def test_token_reads_are_audited_in_batches(client: TestClient) -> None:
    """Each token read becomes a ``token.read`` event (key id and name, never the token), written by the batch."""
    admin = key_with(client, "admin")
    made = connect(client, admin, "DEV", credentials={"token": "static-Token-Value-991"})
    reader = key_with(client, "token")
    for _ in range(3):
        assert client.get(f"/connections/{made['id']}/token", headers=reader).json()["access_token"] == (
            "static-Token-Value-991"
        )
    flush_audit(client)
    reads = client.get("/events", params={"type": "token.read"}, headers=admin).json()["items"]
    assert len(reads) == 3
    assert {r["connection_id"] for r in reads} == {made["id"]}
    assert {r["data"]["caller"]["name"] for r in reads} == {"token"}
    assert "static-Token-Value-991" not in str(reads)
