"""The sans-IO pager: requests built for each style, and what a page's answer means.

Driven end to end through the server in ``tests/proxy/test_paginate.py`` and by the Bridge in
``tests/sdk/test_bridge_limits.py``.
"""

from __future__ import annotations

import dataclasses
import typing

import httpx
import pytest
from pydantic_core import PydanticUndefined

from authbridge.errors import PaginationError
from authbridge.paging import Pager, PageRequest, PageRule, iterate, link_next
from authbridge.spec import Pagination


def _page(data: object, status: int = 200, headers: dict[str, str] | None = None, **named: str) -> httpx.Response:
    return httpx.Response(status, json=data, headers={**(headers or {}), **named})


def test_link_header_parsing() -> None:
    """rel=next among several links, quoted commas and semicolons, Sentry's results="false", and none."""
    header = '<https://a.example/x?page=1>; rel="prev", <https://a.example/x?q=a,b;c&page=3>; rel="next last"'
    assert link_next(header) == "https://a.example/x?q=a,b;c&page=3"
    assert link_next('<https://s.example/?cursor=1:0:0>; rel="next"; results="false"; cursor="1:0:0"') is None
    assert link_next('<https://s.example/?cursor=2>; rel="next"; title="a, b"') == "https://s.example/?cursor=2"
    assert link_next("garbage, <>; rel=next") is None
    assert link_next(None) is None
    assert link_next('<https://a.example/1>; rel="first"') is None


def test_rule_from_json() -> None:
    """Unknown fields (notes) are ignored; an unknown type is refused."""
    assert PageRule.from_json({"type": "page", "page_param": "p", "notes": "x"}).page_param == "p"
    with pytest.raises(PaginationError, match="unknown pagination type 'scroll'"):
        PageRule.from_json({"type": "scroll"})


def test_bad_arguments() -> None:
    rule = PageRule(type="page", page_param="page")
    with pytest.raises(ValueError, match="max_pages"):
        Pager(rule, max_pages=0)
    with pytest.raises(ValueError, match="page_size"):
        Pager(rule, page_size=0)


def test_cursor_from_the_last_item_and_has_more() -> None:
    """Stripe's style: starting_after is the last item's id; has_more false ends it."""
    rule = PageRule(
        type="cursor", cursor_param="starting_after", next_cursor_from_last="id", has_more="has_more", items="data",
        limit_param="limit", limit=2, max_limit=100,
    )  # fmt: skip
    pager = Pager(rule, params={"status": "open"})
    first = pager.first()
    assert first.params == {"status": "open", "limit": "2"}
    items, following = pager.page(_page({"data": [{"id": "a"}, {"id": "b"}], "has_more": True}))
    assert items == [{"id": "a"}, {"id": "b"}]
    assert following is not None and following.params["starting_after"] == "b" and following.number == 2
    assert pager.page(_page({"data": [{"id": "c"}], "has_more": False})) == ([{"id": "c"}], None)
    assert Pager(rule).page(_page({"data": [], "has_more": True}))[1] is None


def test_cursor_ends() -> None:
    """An empty, null or non-text cursor ends a cursor listing; so does ``last_page`` true; a body that is a list."""
    rule = PageRule(type="cursor", cursor_param="c", next_cursor="m.next", last_page="m.done", items="xs")
    for meta in ({"next": ""}, {"next": None}, {"next": {"nested": 1}}, {"next": "2", "done": True}, {}):
        assert Pager(rule).page(_page({"xs": [1], "m": meta}))[1] is None, meta
    assert Pager(rule).page(_page({"xs": [1], "m": {"next": 7}}))[1] == PageRequest(params={"c": "7"}, number=2)
    bare = Pager(PageRule(type="cursor", cursor_param="c", next_cursor="next"))
    with pytest.raises(PaginationError, match="no list of items as the body"):
        bare.page(_page({"next": "x"}))
    assert bare.page(_page([])) == ([], None)


def test_offset_and_page_stop_on_short_or_empty_pages() -> None:
    """Offsets grow by the items received; a short page (with a known size) or an empty one ends it."""
    pager = Pager(PageRule(type="offset", offset_param="start", limit_param="n", limit=2), params={"start": "4"})
    assert pager.first().params == {"n": "2", "start": "4"}
    _, following = pager.page(_page([1, 2]))
    assert following is not None and following.params["start"] == "6"
    assert pager.page(_page([3]))[1] is None
    unsized = Pager(PageRule(type="page", page_param="p"))
    assert unsized.first().params == {"p": "1"}
    assert unsized.page(_page([1]))[1] == PageRequest(params={"p": "2"}, number=2)
    assert unsized.page(_page([]))[1] is None


def test_page_with_a_link_header_stops_without_one() -> None:
    """GitLab's style: pages by number, and the last one has no rel=next."""
    pager = Pager(PageRule(type="page", page_param="page", next_header="Link"))
    pager.first()
    assert pager.page(_page([1], Link='</x?page=2>; rel="next"'))[1] is not None
    assert pager.page(_page([1]))[1] is None


def test_header_and_body_placement() -> None:
    """``cursor_in: header`` sends the cursor as a header (the size stays a query); ``body`` as JSON numbers too."""
    header = Pager(
        PageRule(type="cursor", cursor_param="Range", cursor_in="header", next_header="Next-Range", limit_param="max",
                 limit=5),
        headers={"Accept": "application/json"},
    )  # fmt: skip
    header.first()
    _, following = header.page(_page([1], headers={"Next-Range": "id 9"}))
    assert following is not None
    assert following.headers == {"Accept": "application/json", "Range": "id 9"}
    assert following.params == {"max": "5"}
    body = Pager(PageRule(type="page", page_param="page", cursor_in="body", limit_param="size", limit=1),
                 json={"q": "x"})  # fmt: skip
    assert body.first().json == {"q": "x", "page": 1, "size": 1}


def test_bad_pages() -> None:
    """An error status, a body that is not JSON, and a missing list are PaginationErrors naming the page."""
    pager = Pager(PageRule(type="link", next_url="next", items="values"))
    pager.first()
    with pytest.raises(PaginationError, match="page 1 answered 500") as caught:
        pager.page(_page({}, 500))
    assert caught.value.upstream_status == 500
    with pytest.raises(PaginationError, match="not JSON"):
        pager.page(httpx.Response(200, content=b"<html>"))
    with pytest.raises(PaginationError, match="no list of items at 'values'"):
        pager.page(_page({"values": {"a": 1}}))
    with pytest.raises(PaginationError, match="no list of items at 'values'"):
        pager.page(httpx.Response(204))


def test_link_loops_and_max_pages() -> None:
    """A link seen before is a loop; ``max_pages`` stops after the allowed pages' items."""

    def send(request: PageRequest) -> httpx.Response:
        return _page([request.number], Link=f'</p{request.number % 2}>; rel="next"')

    with pytest.raises(PaginationError, match="same next link twice"):
        list(iterate(Pager(PageRule(type="link", next_header="Link")), send))
    got: list[typing.Any] = []
    with pytest.raises(PaginationError, match="max_pages=1"):
        for item in iterate(Pager(PageRule(type="link", next_header="Link"), max_pages=1), send):
            got.append(item)
    assert got == [1]


def test_the_page_rule_mirrors_the_spec_field_for_field() -> None:
    """PageRule is the SDK's copy of the spec's Pagination (it must not import the spec layer): same names,
    defaults and types; only the spec's free-text ``notes`` stays behind (``from_json`` drops it)."""
    spec = {name: (f.default, f.annotation) for name, f in Pagination.model_fields.items() if name != "notes"}
    hints = typing.get_type_hints(PageRule)
    rule = {f.name: (f.default, hints[f.name]) for f in dataclasses.fields(PageRule)}
    assert rule == {  # a field without a default: the dataclass says MISSING, pydantic PydanticUndefined
        name: (dataclasses.MISSING if default is PydanticUndefined else default, kind)
        for name, (default, kind) in spec.items()
    }
    assert list(rule) == list(spec)  # the same order, so a reader compares them line by line
    assert PageRule.from_json({"type": "page", "page_param": "p", "notes": "text"}) == PageRule("page", page_param="p")
