"""``client.paginate`` through the running server, for each paging style, and against a lying provider.

The pager's rules are unit-tested in ``tests/test_paging.py``; ``bridge.paginate`` in
``tests/sdk/test_bridge_limits.py``.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator

import httpx
import pytest

from authbridge.client import AsyncAuthBridgeClient, AuthBridgeAPIError, AuthBridgeClient
from authbridge.errors import PaginationError
from tests.proxy.conftest import Server
from tests.proxy.limits_upstream import LimitsProvider as Provider
from tests.proxy.limits_upstream import run_limits_provider

TOKEN = "paging-api-token-0123456789"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with run_limits_provider() as running:
        yield running


@pytest.fixture
def api(server: Server) -> Iterator[AuthBridgeClient]:
    with AuthBridgeClient(server.url, server.key) as client:
        yield client


def _connect(server: Server, provider: Provider, key: str, pagination: typing.Mapping[str, object]) -> str:
    server.integration(
        {
            "key": key,
            "name": key,
            "auth": {"type": "api_token"},
            "token": {"in": "header", "name": "X-Api-Key", "template": "{token}"},
            "request": {"base_url": f"{provider.url}/v1", "query": {"format": "json"}},
            "rate_limit": {"max_retries": 2},
            "pagination": pagination,
        }
    )
    provider.state.reset()
    return server.connect(key, credentials={"token": TOKEN})


STYLES: list[tuple[str, str, dict[str, object], dict[str, typing.Any], list[object]]] = [
    (
        "pgcursor",
        "cursor",
        {"type": "cursor", "cursor_param": "cursor", "next_cursor": "meta.next", "items": "data",
         "limit_param": "limit", "max_limit": 3},
        {"page_size": 50},
        [{"id": i} for i in range(7)],
    ),
    (
        "pglink",
        "link",
        {"type": "link", "next_header": "Link"},
        {},
        [{"n": i} for i in range(5)],
    ),
    (
        "pglinkbody",
        "link-body",
        {"type": "link", "next_url": "next", "items": "values"},
        {},
        [{"n": i} for i in range(5)],
    ),
    (
        "pgoffset",
        "offset",
        {"type": "offset", "offset_param": "offset", "limit_param": "limit", "limit": 3, "items": "items"},
        {},
        [{"i": i} for i in range(7)],
    ),
    (
        "pgpage",
        "page",
        {"type": "page", "page_param": "page", "first_page": 0, "limit_param": "per_page", "limit": 2,
         "last_page": "last", "items": "results"},
        {},
        [{"p": i} for i in range(5)],
    ),
    (
        "pgheader",
        "header-cursor",
        {"type": "cursor", "cursor_param": "Range", "cursor_in": "header", "next_header": "Next-Range"},
        {},
        [{"h": i} for i in range(5)],
    ),
    (
        "pgbody",
        "search",
        {"type": "cursor", "cursor_param": "start_cursor", "cursor_in": "body", "next_cursor": "next_cursor",
         "has_more": "has_more", "items": "results"},
        {"method": "POST", "json": {"query": "x"}},
        [{"s": i} for i in range(5)],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("key", "path", "rule", "kwargs", "expected"), STYLES, ids=[s[0] for s in STYLES])
def test_each_paging_style(
    server: Server,
    provider: Provider,
    api: AuthBridgeClient,
    key: str,
    path: str,
    rule: dict[str, object],
    kwargs: dict[str, typing.Any],
    expected: list[object],
) -> None:
    """Every item, in order, each page sent with the connection's credentials and injected query."""
    cid = _connect(server, provider, key, rule)
    assert list(api.paginate(cid, path, **kwargs)) == expected
    seen = provider.state.seen
    assert len(seen) >= 3
    assert {s["key"] for s in seen} == {TOKEN}
    assert all(s["query"].get("format") == "json" for s in seen)
    assert all(s["path"] == f"/v1/{path}" for s in seen)


def test_the_page_size_is_capped_at_max_limit(server: Server, provider: Provider, api: AuthBridgeClient) -> None:
    """``page_size=50`` with ``max_limit: 3`` asks for 3 a page."""
    cid = _connect(server, provider, "pgcap", STYLES[0][2])
    assert len(list(api.paginate(cid, "cursor", page_size=50))) == 7
    assert {s["query"]["limit"] for s in provider.state.seen} == {"3"}


def test_it_is_lazy(server: Server, provider: Provider, api: AuthBridgeClient) -> None:
    """Taking the first two items fetches one page only."""
    cid = _connect(server, provider, "pglazy", STYLES[0][2])
    items = api.paginate(cid, "cursor")
    assert provider.state.seen == []
    assert [next(items), next(items)] == [{"id": 0}, {"id": 1}]
    assert len(provider.state.seen) == 1


async def test_the_async_client_pages_too(server: Server, provider: Provider) -> None:
    """``AsyncAuthBridgeClient.paginate`` is an async iterator over the same items."""
    cid = _connect(server, provider, "pgasync", STYLES[1][2])
    async with AsyncAuthBridgeClient(server.url, server.key) as client:
        found = [item async for item in client.paginate(cid, "link")]
        given = [item async for item in client.paginate(cid, "offset", pagination=STYLES[3][2])]
    assert found == [{"n": i} for i in range(5)]
    assert given == [{"i": i} for i in range(7)]


def test_a_link_to_another_host_is_refused(server: Server, provider: Provider, api: AuthBridgeClient) -> None:
    """A Link header pointing elsewhere: the proxy refuses it and the other host never sees the credentials."""
    cid = _connect(server, provider, "pgevil", {"type": "link", "next_header": "Link"})
    with pytest.raises(AuthBridgeAPIError) as caught:
        list(api.paginate(cid, "link-evil"))
    assert caught.value.code == "next_url_outside_base"
    assert provider.evil.seen == []
    assert TOKEN not in str(caught.value)


def test_a_forged_next_header_cannot_escape_the_base_url(server: Server, provider: Provider) -> None:
    """X-AuthBridge-Next sent by hand with another host, a path outside the base or dot segments: 400, nothing sent."""
    cid = _connect(server, provider, "pgforged", {"type": "link", "next_header": "Link"})
    links = (
        f"{provider.url}/other",
        "/v1/../admin",
        "/v1/%2e%2e/admin",
        "//evil.example/v1/x",
        "http://127.0.0.1:1/v1/x",
    )
    for link in (*links, "a b", ""):
        response = httpx.get(
            f"{server.url}/proxy/{cid}/link", headers={**server.headers, "X-AuthBridge-Next": link}, timeout=10
        )
        assert response.status_code == 400, link
        assert response.json()["error"]["code"] in ("next_url_outside_base", "invalid_next_url")
    assert provider.state.seen == []


def test_an_endless_cursor_is_stopped(server: Server, provider: Provider, api: AuthBridgeClient) -> None:
    """The same cursor twice is a loop: PaginationError after the second page, not an endless listing."""
    rule = {"type": "cursor", "cursor_param": "cursor", "next_cursor": "meta.next", "items": "data"}
    cid = _connect(server, provider, "pgloop", rule)
    with pytest.raises(PaginationError, match="same cursor twice"):
        list(api.paginate(cid, "cursor-loop", max_pages=1000))
    assert len(provider.state.seen) == 2


def test_max_pages_stops_with_an_error(server: Server, provider: Provider, api: AuthBridgeClient) -> None:
    """``max_pages=2``: the items of two pages, then PaginationError saying more remain."""
    cid = _connect(server, provider, "pgmax", STYLES[0][2])
    items = api.paginate(cid, "cursor", max_pages=2)
    got = [next(items) for _ in range(6)]
    assert got == [{"id": i} for i in range(6)]
    with pytest.raises(PaginationError, match="max_pages=2"):
        next(items)
    assert len(provider.state.seen) == 2


def test_a_page_without_items_is_an_error(server: Server, provider: Provider, api: AuthBridgeClient) -> None:
    """A page with no list at the declared path fails clearly; ``items=`` overrides the path."""
    cid = _connect(server, provider, "pgnoitems", STYLES[0][2])
    with pytest.raises(PaginationError, match="no list of items at 'data'"):
        list(api.paginate(cid, "noitems"))
    with pytest.raises(PaginationError, match="page 1 answered 404"):
        list(api.paginate(cid, "nothing-here"))


def test_an_integration_without_pagination(server: Server, provider: Provider, api: AuthBridgeClient) -> None:
    """No rule declared and none given: a clear error before anything is sent upstream."""
    server.integration(
        {"key": "pgnone", "name": "n", "auth": {"type": "none"}, "request": {"base_url": f"{provider.url}/v1"}}
    )
    cid = server.connect("pgnone")
    with pytest.raises(PaginationError, match="declares no pagination"):
        list(api.paginate(cid, "cursor"))
    assert api.connections.get(cid).id == cid


def test_a_next_link_under_the_base_is_followed(server: Server, provider: Provider) -> None:
    """A next link sent by hand that stays under the base URL is followed, relative or absolute."""
    server.integration(
        {"key": "pgplain", "name": "p", "auth": {"type": "none"}, "request": {"base_url": f"{provider.url}/v1"}}
    )
    cid = server.connect("pgplain")
    for link in ("?page=2", f"{provider.url}/v1/link?page=2", "/v1/link?page=2"):
        response = httpx.get(
            f"{server.url}/proxy/{cid}/link", headers={**server.headers, "X-AuthBridge-Next": link}, timeout=10
        )
        assert response.status_code == 200, link
        assert response.json() == [{"n": 2}, {"n": 3}]
