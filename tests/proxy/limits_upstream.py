"""A provider on loopback that limits and pages (raw ASGI under uvicorn, in a thread): rate-limit and paging tests.

- ``/limited``: answers the queued ``(status, headers, body)`` first, then 200 ``{"ok": true}``.
- ``/slow``: holds each request 0.15 s and records the most requests it had in flight at once.
- ``/cursor``: 7 items, ``{"data": [...], "meta": {"next": CURSOR}}`` (``limit`` per page, 3 by default).
- ``/cursor-loop``: always the same cursor.
- ``/link``: 5 items, 2 a page, the next page in a ``Link`` header (absolute, under the base URL).
- ``/link-body``: the same with a relative next URL in ``{"next": ...}``.
- ``/link-evil``: a ``Link`` to ``evil_url`` (another server).
- ``/offset``: 7 items in ``{"items": [...]}`` by ``offset`` / ``limit``.
- ``/page``: 5 items in ``{"results": [...], "last": bool}`` by ``page`` (from 0) / ``per_page``.
- ``/header-cursor``: 5 items; the cursor comes in the ``Range`` request header, the next one in ``Next-Range``.
- ``/search`` (POST): 5 items; ``start_cursor`` in the JSON body, ``{"results", "next_cursor", "has_more"}``.
- ``/noitems``: ``{"something": 1}``.
Every request's path, query, ``X-Api-Key`` header and JSON body are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import typing
from collections.abc import Iterator
from urllib.parse import parse_qsl

from tests.proxy.upstream import Handler, Scope, answer, asgi, free_port, read_body, serve


class LimitsState:
    """What the tests see and set."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, dict[str, str], bytes]] = []
        self.seen: list[dict[str, typing.Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        #: While true, ``/slow`` holds its requests.
        self.hold = False
        self.evil_url = "http://127.0.0.1:9"

    def reset(self) -> None:
        evil = self.evil_url
        self.__init__()  # type: ignore[misc]
        self.evil_url = evil

    def hits(self, path: str) -> int:
        return sum(1 for s in self.seen if s["path"].endswith(path))


def _int(value: str | None, default: int) -> int:
    return int(value) if value and value.isdigit() else default


def make_app(state: LimitsState) -> Handler:
    """The ASGI app."""

    async def handle(scope: Scope, receive: typing.Any, send: typing.Any) -> None:
        path: str = scope["path"]
        query = dict(parse_qsl(scope["query_string"].decode()))
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        raw = await read_body(receive)
        body = json.loads(raw) if raw else None
        state.seen.append({"path": path, "query": query, "key": headers.get("x-api-key"), "json": body})
        base = f"http://{headers['host']}"
        extra: dict[str, str] = {}
        data: typing.Any = None
        if path.endswith("/limited"):
            if state.queue:
                status, extra, content = state.queue.pop(0)
                await answer(send, status, content, extra)
            else:
                await answer(send, 200, b'{"ok": true}')
        elif path.endswith("/slow"):
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            await asyncio.sleep(0.15)
            while state.hold:
                await asyncio.sleep(0.01)
            state.in_flight -= 1
            await answer(send, 200, b'{"ok": true}')
        elif path.endswith("/cursor"):
            start, size = _int(query.get("cursor"), 0), _int(query.get("limit"), 3)
            items = [{"id": i} for i in range(start, min(start + size, 7))]
            following = start + size if start + size < 7 else None
            data = {"data": items, "meta": {"next": f"{following}" if following is not None else None}}
            await answer(send, 200, json.dumps(data).encode())
        elif path.endswith("/cursor-loop"):
            await answer(send, 200, json.dumps({"data": [{"id": 1}], "meta": {"next": "again"}}).encode())
        elif path.endswith("/link") or path.endswith("/link-body"):
            page = _int(query.get("page"), 1)
            items = [{"n": i} for i in range((page - 1) * 2, min(page * 2, 5))]
            data = items
            if path.endswith("/link"):
                if page < 3:
                    extra["Link"] = f'<{base}{path}?page={page + 1}>; rel="next", <{base}{path}?page=1>; rel="first"'
            else:
                data = {"values": items, "next": f"{path}?page={page + 1}" if page < 3 else None}
            await answer(send, 200, json.dumps(data).encode(), extra)
        elif path.endswith("/link-evil"):
            extra = {"Link": f'<{state.evil_url}/steal?page=2>; rel="next"'}
            await answer(send, 200, json.dumps([{"n": 0}]).encode(), extra)
        elif path.endswith("/offset"):
            offset, limit = _int(query.get("offset"), 0), _int(query.get("limit"), 3)
            items = [{"i": i} for i in range(offset, min(offset + limit, 7))]
            await answer(send, 200, json.dumps({"items": items}).encode())
        elif path.endswith("/page"):
            page, per = _int(query.get("page"), 0), _int(query.get("per_page"), 2)
            items = [{"p": i} for i in range(page * per, min((page + 1) * per, 5))]
            await answer(send, 200, json.dumps({"results": items, "last": (page + 1) * per >= 5}).encode())
        elif path.endswith("/header-cursor"):
            start = _int(headers.get("range", "").removeprefix("id ").strip(), 0)
            items = [{"h": i} for i in range(start, min(start + 2, 5))]
            extra = {"Next-Range": f"id {start + 2}"} if start + 2 < 5 else {}
            await answer(send, 206 if extra else 200, json.dumps(items).encode(), extra)
        elif path.endswith("/search"):
            start = _int((body or {}).get("start_cursor"), 0)
            items = [{"s": i} for i in range(start, min(start + 2, 5))]
            more = start + 2 < 5
            data = {"results": items, "next_cursor": str(start + 2) if more else None, "has_more": more}
            await answer(send, 200, json.dumps(data).encode())
        elif path.endswith("/noitems"):
            await answer(send, 200, b'{"something": 1}')
        else:
            await answer(send, 404, b'{"error": "no such path"}')

    return asgi(handle)


class LimitsProvider(typing.NamedTuple):
    """A running limiting provider, and the other server its ``/link-evil`` points at."""

    url: str
    state: LimitsState
    evil: LimitsState


@contextlib.contextmanager
def run_limits_provider() -> Iterator[LimitsProvider]:
    """Serve the provider and its evil twin on loopback (the twin records what reached it)."""
    state, evil = LimitsState(), LimitsState()
    with serve(make_app(state), free_port()) as url, serve(make_app(evil), free_port()) as evil_url:
        state.evil_url = evil_url
        yield LimitsProvider(url, state, evil)
