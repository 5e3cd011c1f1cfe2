"""How a provider limits and pages: the ``rate_limit`` and ``pagination`` blocks of an integration spec.

Both sit at the top level of a spec, beside ``request``, so any integration (not only a catalog
entry) declares them. The proxy and the Bridge act on ``rate_limit``; ``paginate`` in the SDK and
the Bridge follows ``pagination``.

```yaml
rate_limit:
  retry_on: [429, 503]
  wait_from: [{header: Retry-After}, {header: X-RateLimit-Reset, format: unix}]
  max_wait: 60s
  max_concurrent: 4
pagination:
  type: cursor
  cursor_param: cursor
  next_cursor: meta.next
  items: data
```
"""

from __future__ import annotations

import re
import typing
from datetime import timedelta

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator, model_validator

from authbridge.spec.durations import format_duration, parse_duration

__all__ = ["Pace", "Pagination", "RateLimit", "WaitFrom"]

_PATH = re.compile(r"[A-Za-z0-9_$@\[\]-]+(?:\.[A-Za-z0-9_$@\[\]-]+)*")
_HEADER = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PARAM = re.compile(r"[!-~]{1,100}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _body_path(value: str | None) -> str | None:
    if value is not None and not _PATH.fullmatch(value):
        raise ValueError("must be a dotted path into the JSON body, e.g. response_metadata.next_cursor")
    return value


def _header(value: str | None) -> str | None:
    if value is not None and not _HEADER.fullmatch(value):
        raise ValueError("is not a valid HTTP header name")
    return value


def _param(value: str | None) -> str | None:
    if value is not None and not _PARAM.fullmatch(value):
        raise ValueError("must be 1 to 100 visible characters (no spaces)")
    return value


Duration = typing.Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


class WaitFrom(_Model):
    """Where the provider says how long to wait: a header or a body path, and how the value is written.

    ``seconds``: a delay (``Retry-After: 30``; an HTTP date is read too, as RFC 9110 allows for
    ``Retry-After``); ``milliseconds``: a delay in ms; ``unix``: the instant the window resets, in
    Unix seconds; ``unix_ms``: the same in milliseconds; ``http_date``: an HTTP date.
    """

    header: str | None = None
    body: str | None = None
    format: typing.Literal["seconds", "milliseconds", "unix", "unix_ms", "http_date"] = "seconds"

    _header_name = field_validator("header")(_header)
    _path = field_validator("body")(_body_path)

    @model_validator(mode="after")
    def _one_source(self) -> WaitFrom:
        if (self.header is None) == (self.body is None):
            raise ValueError("give exactly one of header or body")
        return self


class Pace(_Model):
    """At most ``requests`` per ``per`` (a duration) on one connection, in one process."""

    requests: int = Field(ge=1, le=100_000)
    per: Duration

    @field_validator("per")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0) or value > timedelta(hours=24):
            raise ValueError("must be more than 0s and at most 24h")
        return value


class RateLimit(_Model):
    """The provider's rate limiting: what the proxy and the Bridge wait for and retry, and how much at once."""

    #: Answers that mean "slow down": idempotent requests are retried after waiting.
    retry_on: list[typing.Annotated[int, Field(ge=400, le=599)]] = Field(default_factory=lambda: [429])
    #: Where the wait comes from, first found wins (none found: exponential backoff from 1 s).
    wait_from: list[WaitFrom] = Field(default_factory=lambda: [WaitFrom(header="Retry-After")])
    #: The header counting the requests left in the window (informational; shown to people).
    remaining_header: str | None = None
    #: The longest total wait, over all retries of one request; a longer wait is not taken and the
    #: caller gets the provider's answer (with its Retry-After) at once.
    max_wait: Duration = timedelta(seconds=30)
    #: At most this many retries of one request.
    max_retries: int = Field(default=3, ge=0, le=10)
    #: At most this many requests in flight on one connection (per AuthBridge process); more wait.
    max_concurrent: int | None = Field(default=None, ge=1, le=10_000)
    #: How long a request waits for a free slot (of ``max_concurrent`` or ``pace``) before a 429.
    queue_timeout: Duration = timedelta(seconds=10)
    #: Requests per interval on one connection (per AuthBridge process), spaced evenly.
    pace: Pace | None = None
    #: The documented limit in words (e.g. "5,000 requests per hour per user").
    documented: str | None = Field(default=None, min_length=1)

    _remaining = field_validator("remaining_header")(_header)

    @field_validator("max_wait", "queue_timeout")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if value < timedelta(0) or value > timedelta(minutes=10):
            raise ValueError("must be between 0s and 10m")
        return value

    @field_validator("retry_on")
    @classmethod
    def _unique(cls, value: list[int]) -> list[int]:
        return list(dict.fromkeys(value))


class Pagination(_Model):
    """How the provider's list endpoints page, for ``paginate`` in the SDK and the Bridge.

    - ``cursor``: send ``cursor_param``; the next cursor is at ``next_cursor`` (a body path), in the
      ``next_header``, or a field of the last item (``next_cursor_from_last``); the last page has none
      (or ``has_more`` false, or ``last_page`` true).
    - ``link``: follow the next URL from the ``Link`` header (``next_header: Link``, ``rel="next"``),
      another header holding a URL, or ``next_url`` (a body path). It must stay under the base URL.
    - ``offset``: ``offset_param`` grows by the number of items received.
    - ``page``: ``page_param`` counts pages from ``first_page``.

    ``cursor_in`` says where the cursor (and the offset, page and limit) is sent: query parameters,
    request headers (Heroku's ``Range``), or fields of a JSON body (a POST search).
    """

    type: typing.Literal["cursor", "link", "offset", "page"]
    cursor_param: str | None = None
    next_cursor: str | None = None
    #: The cursor is a field of the last item of the page (Stripe's ``starting_after``: the last ``id``).
    next_cursor_from_last: str | None = None
    next_url: str | None = None
    next_header: str | None = None
    #: A body path that is true while there are more pages.
    has_more: str | None = None
    #: A body path that is true on the last page.
    last_page: str | None = None
    offset_param: str | None = None
    page_param: str | None = None
    first_page: int = Field(default=1, ge=0)
    limit_param: str | None = None
    #: The page size asked for when the caller gives none (capped at ``max_limit``).
    limit: int | None = Field(default=None, ge=1)
    max_limit: int | None = Field(default=None, ge=1)
    cursor_in: typing.Literal["query", "header", "body"] = "query"
    #: Where the items of a page are (a body path); absent when the body is the list itself.
    items: str | None = None
    notes: str | None = None

    _paths = field_validator("next_cursor", "next_cursor_from_last", "next_url", "has_more", "last_page", "items")(
        _body_path
    )
    _headers = field_validator("next_header")(_header)
    _params = field_validator("cursor_param", "offset_param", "page_param", "limit_param")(_param)

    @model_validator(mode="after")
    def _complete(self) -> Pagination:
        needs: dict[str, tuple[tuple[str, ...], ...]] = {
            "cursor": (("cursor_param",), ("next_cursor", "next_cursor_from_last", "next_header")),
            "link": (("next_url", "next_header"),),
            "offset": (("offset_param",),),
            "page": (("page_param",),),
        }
        for options in needs[self.type]:
            if all(getattr(self, name) is None for name in options):
                raise ValueError(f"{self.type} pagination needs {' or '.join(options)}")
        if self.cursor_in == "header" and self.cursor_param is not None and not _HEADER.fullmatch(self.cursor_param):
            raise ValueError("cursor_in: header needs cursor_param to be a header name")
        return self
