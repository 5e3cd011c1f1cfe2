"""Following a provider's pages, sans-IO: what to send for each page, and what a page says.

The integration's ``pagination`` block (:class:`authbridge.spec.Pagination`, as JSON) drives a
:class:`Pager`; the SDK (through the proxy) and the Bridge (with ``httpx``) send its requests:

```
pager = Pager(rule, params={"state": "open"}, page_size=100, max_pages=50)
request = pager.first()
while request is not None:
    response = send(request)                  # request.params / headers / json / link
    items, request = pager.page(response)     # PaginationError when a page makes no sense
    yield from items
```

It imports httpx (for ``httpx.Response``) and ``authbridge.errors`` only, so the HTTP SDK stays standalone.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping

import httpx

from authbridge.errors import PaginationError

__all__ = ["PageRequest", "PageRule", "Pager", "aiterate", "iterate", "link_next"]

Json = dict[str, typing.Any]
_MISSING = object()


@dataclasses.dataclass(frozen=True)
class PageRule:
    """An integration's ``pagination`` block as plain data (see :class:`authbridge.spec.Pagination`)."""

    type: typing.Literal["cursor", "link", "offset", "page"]
    cursor_param: str | None = None
    next_cursor: str | None = None
    next_cursor_from_last: str | None = None
    next_url: str | None = None
    next_header: str | None = None
    has_more: str | None = None
    last_page: str | None = None
    offset_param: str | None = None
    page_param: str | None = None
    first_page: int = 1
    limit_param: str | None = None
    limit: int | None = None
    max_limit: int | None = None
    cursor_in: typing.Literal["query", "header", "body"] = "query"
    items: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, typing.Any]) -> PageRule:
        """Build from the JSON the API answers (unknown fields, such as ``notes``, are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        if data.get("type") not in ("cursor", "link", "offset", "page"):
            raise PaginationError(f"unknown pagination type {data.get('type')!r}")
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclasses.dataclass(frozen=True)
class PageRequest:
    """What to send for one page: query parameters, headers, JSON body fields, or a next-page link to follow."""

    params: dict[str, str] = dataclasses.field(default_factory=dict)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    json: Json | None = None
    #: The upstream's next-page URL as it gave it (absolute or relative): follow it instead of the path.
    link: str | None = None
    number: int = 1


def _at(data: object, path: str) -> object:
    node = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _split_link(header: str) -> list[str]:
    """The link-values of a ``Link`` header (RFC 8288), split on commas outside ``<...>`` and quotes."""
    parts: list[str] = []
    current: list[str] = []
    in_url = in_quote = False
    for char in header:
        if char == "<" and not in_quote:
            in_url = True
        elif char == ">" and not in_quote:
            in_url = False
        elif char == '"' and not in_url:
            in_quote = not in_quote
        elif char == "," and not in_url and not in_quote:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def link_next(header: str | None) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header; None when there is none (or it says ``results="false"``)."""
    if not header:
        return None
    for value in _split_link(header):
        url_part, _, rest = value.strip().partition(">")
        if not url_part.startswith("<"):
            continue
        params: dict[str, str] = {}
        for param in rest.split(";"):
            name, _, raw = param.strip().partition("=")
            params[name.strip().lower()] = raw.strip().strip('"')
        if "next" in params.get("rel", "").lower().split():
            if params.get("results", "true").lower() == "false":  # Sentry: a next link with nothing behind it
                return None
            return url_part[1:].strip() or None
    return None


def _text(value: object) -> str | None:
    if value is None or value is _MISSING or value == "" or isinstance(value, bool | dict | list):
        return None
    return str(value)


class Pager:
    """One listing's pages: the first request, then each page's items and the next request (or the end).

    ``max_pages`` bounds the pages fetched: when more remain, :class:`PaginationError` says so after
    the last allowed page's items. A cursor or link seen before is a loop, refused the same way.
    """

    def __init__(
        self,
        rule: PageRule,
        *,
        params: Mapping[str, typing.Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Mapping[str, typing.Any] | None = None,
        page_size: int | None = None,
        items: str | None = None,
        max_pages: int = 100,
    ) -> None:
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        if page_size is not None and page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.rule = rule
        self.items_path = items if items is not None else rule.items
        self.max_pages = max_pages
        self._params = {k: str(v) for k, v in (params or {}).items()}
        self._headers = dict(headers or {})
        self._json = dict(json) if json is not None else None
        size = page_size if page_size is not None else rule.limit
        if size is not None and rule.max_limit is not None:
            size = min(size, rule.max_limit)
        self.page_size = size if rule.limit_param is not None else None
        self._seen: set[str] = set()
        self._number = 1
        self._position = 0

    def _request(self, moving: Mapping[str, str | int], number: int) -> PageRequest:
        """The caller's request with the paging fields placed where ``cursor_in`` says.

        In a JSON body, offsets, pages and sizes are numbers; in a query or a header, text. With
        ``cursor_in: header`` only the cursor goes in a header; the page size stays a query parameter.
        """
        params, headers = dict(self._params), dict(self._headers)
        body = dict(self._json) if self._json is not None else None
        fields: dict[str, str | int] = dict(moving)
        if self.page_size is not None and self.rule.limit_param is not None:
            fields[self.rule.limit_param] = self.page_size
        where = self.rule.cursor_in
        if where == "body":
            body = {**(body or {}), **fields}
        elif where == "header":
            headers.update({k: str(v) for k, v in moving.items()})
            params.update({k: str(v) for k, v in fields.items() if k not in moving})
        else:
            params.update({k: str(v) for k, v in fields.items()})
        return PageRequest(params=params, headers=headers, json=body, number=number)

    def first(self) -> PageRequest:
        """The request for the first page."""
        self._number = 1
        rule = self.rule
        if rule.type == "page" and rule.page_param is not None:
            self._position = rule.first_page
            return self._request({rule.page_param: rule.first_page}, 1)
        if rule.type == "offset" and rule.offset_param is not None:
            start = self._params.pop(rule.offset_param, "0")
            self._position = int(start) if start.isdigit() else 0
            return self._request({rule.offset_param: self._position}, 1)
        return self._request({}, 1)

    def _items(self, data: object) -> list[typing.Any]:
        found = data if self.items_path is None else _at(data, self.items_path)
        if not isinstance(found, list):
            where = f"at {self.items_path!r}" if self.items_path else "as the body"
            raise PaginationError(
                f"page {self._number} has no list of items {where}; give paginate(items=...) the path of the list"
            )
        return found

    def page(self, response: httpx.Response) -> tuple[list[typing.Any], PageRequest | None]:
        """The items of one (read) page, and the request for the next one (None: that was the last)."""
        if not response.is_success:
            raise PaginationError(
                f"page {self._number} answered {response.status_code}", upstream_status=response.status_code
            )
        try:
            data = response.json() if response.content else None
        except ValueError:
            raise PaginationError(f"page {self._number} is not JSON") from None
        items = self._items(data)
        following = self._next(response, data, items)
        if following is not None:
            self._number += 1
            following = dataclasses.replace(following, number=self._number)
        return items, following

    def check(self, request: PageRequest) -> PageRequest:
        """``request`` if it is within ``max_pages``; PaginationError (more remain) otherwise."""
        if request.number > self.max_pages:
            raise PaginationError(
                f"stopped after max_pages={self.max_pages} pages and more remain; raise max_pages to read them"
            )
        return request

    def _ended(self, data: object) -> bool:
        rule = self.rule
        if rule.has_more is not None:
            more = _at(data, rule.has_more)
            if more is not _MISSING and not more:
                return True
        return rule.last_page is not None and _at(data, rule.last_page) is True

    def _once(self, token: str, what: str) -> str:
        if token in self._seen:
            raise PaginationError(f"the upstream gave the same {what} twice (page {self._number}): a paging loop")
        self._seen.add(token)
        return token

    def _next(self, response: httpx.Response, data: object, items: list[typing.Any]) -> PageRequest | None:
        rule = self.rule
        if self._ended(data):
            return None
        if rule.type == "link":
            link = self._link(response, data)
            return (
                None if link is None else PageRequest(headers=dict(self._headers), link=self._once(link, "next link"))
            )
        if rule.type == "cursor":
            cursor = self._cursor(response, data, items)
            if cursor is None or rule.cursor_param is None:
                return None
            return self._request({rule.cursor_param: self._once(cursor, "cursor")}, 0)
        # offset and page: an empty page, a short page, or a missing next link ends it
        if not items or (self.page_size is not None and len(items) < self.page_size):
            return None
        if rule.next_header is not None and self._link(response, data) is None:
            return None
        if rule.type == "offset" and rule.offset_param is not None:
            self._position += len(items)
            return self._request({rule.offset_param: self._position}, 0)
        self._position += 1
        return self._request({typing.cast(str, rule.page_param): self._position}, 0)

    def _link(self, response: httpx.Response, data: object) -> str | None:
        rule = self.rule
        if rule.next_header is not None:
            value = response.headers.get(rule.next_header)
            link = link_next(value) if rule.next_header.lower() == "link" else (value or None)
            if link is not None:
                return link
        return _text(_at(data, rule.next_url)) if rule.next_url is not None else None

    def _cursor(self, response: httpx.Response, data: object, items: list[typing.Any]) -> str | None:
        rule = self.rule
        if rule.next_cursor is not None:
            return _text(_at(data, rule.next_cursor))
        if rule.next_header is not None:
            return response.headers.get(rule.next_header) or None
        if rule.next_cursor_from_last is not None and items:
            return _text(_at(items[-1], rule.next_cursor_from_last))
        return None


def iterate(pager: Pager, send: Callable[[PageRequest], httpx.Response]) -> Iterator[typing.Any]:
    """Every item, page after page, sending each page's request with ``send`` (lazily: a page when needed)."""
    request: PageRequest | None = pager.first()
    while request is not None:
        items, request = pager.page(send(pager.check(request)))
        yield from items
        if request is not None:
            pager.check(request)


async def aiterate(pager: Pager, send: Callable[[PageRequest], Awaitable[httpx.Response]]) -> AsyncIterator[typing.Any]:
    """:func:`iterate` for async code."""
    request: PageRequest | None = pager.first()
    while request is not None:
        items, request = pager.page(await send(pager.check(request)))
        for item in items:
            yield item
        if request is not None:
            pager.check(request)
