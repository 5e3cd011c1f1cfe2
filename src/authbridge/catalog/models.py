"""The catalog metadata of an entry: how a person sets the provider up, and how the provider pages and limits.

An entry file is an integration spec (see :mod:`authbridge.spec`) with one more top-level block,
``catalog``, validated by :class:`CatalogMeta`. ``rate_limit`` and ``pagination`` are data here: they
describe the provider's documented behaviour so the proxy and the SDK can act on it.
"""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from authbridge.spec.models import Duration

__all__ = ["CATEGORIES", "CatalogMeta", "Pagination", "RateLimit", "Scope", "WaitFrom"]

Category = typing.Literal[
    "accounting",
    "ai",
    "cloud",
    "communication",
    "crm",
    "design",
    "developer-tools",
    "e-commerce",
    "email",
    "file-storage",
    "forms",
    "identity",
    "marketing",
    "monitoring",
    "payments",
    "productivity",
    "project-management",
    "scheduling",
    "social",
    "support",
    "video",
]
#: The categories an entry may list (the console and ``catalog list --category`` filter on them).
CATEGORIES: tuple[str, ...] = typing.get_args(Category)

_HOST = re.compile(r"(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")
_PATH = re.compile(r"[A-Za-z0-9_$@-]+(?:\.[A-Za-z0-9_$@-]+)*")
_HEADER = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


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


class Scope(_Model):
    """An OAuth scope a user may add, and what it grants."""

    name: str = Field(min_length=1)
    description: str = Field(min_length=1)


class WaitFrom(_Model):
    """Where the provider says how long to wait: a header or a body path, and how the value is written.

    ``seconds``: a delay (``Retry-After: 30``); ``unix``: the instant the window resets, in Unix
    seconds; ``unix_ms``: the same in milliseconds; ``http_date``: an HTTP date (``Retry-After`` may be one).
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


class RateLimit(_Model):
    """The provider's documented rate limiting, as data for the proxy and the SDK."""

    #: Answers that mean "slow down" (and that may be retried after waiting).
    retry_on: list[typing.Annotated[int, Field(ge=400, le=599)]] = Field(default_factory=lambda: [429])
    #: Where the wait comes from, first found wins.
    wait_from: list[WaitFrom] = Field(default_factory=list)
    #: The header counting the requests left in the window, if the provider sends one.
    remaining_header: str | None = None
    #: The longest total wait worth retrying within; past it the caller gets the 429.
    max_wait: Duration | None = None
    #: The documented limit in words (e.g. "5,000 requests per hour per user").
    documented: str = Field(min_length=1)

    _remaining = field_validator("remaining_header")(_header)


class Pagination(_Model):
    """How the provider's list endpoints page, as data for ``paginate``.

    - ``cursor``: send ``cursor_param``; the next cursor is at ``next_cursor`` (a body path), in the
      ``next_header``, or a field of the last item (``next_cursor_from_last``); the last page has none
      (or ``has_more`` false).
    - ``link``: follow the next URL from the ``Link`` header (``next_header: Link``) or ``next_url`` (a body path).
    - ``offset``: ``offset_param`` grows by the page size.
    - ``page``: ``page_param`` counts pages from ``first_page``.
    """

    type: typing.Literal["cursor", "link", "offset", "page"]
    cursor_param: str | None = None
    next_cursor: str | None = None
    #: The cursor is a field of the last item of the page (Stripe's ``starting_after``: the last ``id``).
    next_cursor_from_last: str | None = None
    next_url: str | None = None
    next_header: str | None = None
    has_more: str | None = None
    offset_param: str | None = None
    page_param: str | None = None
    first_page: int = Field(default=1, ge=0)
    limit_param: str | None = None
    max_limit: int | None = Field(default=None, ge=1)
    #: Where the items of a page are (a body path); absent when the body is the list itself.
    items: str | None = None
    notes: str | None = None

    _paths = field_validator("next_cursor", "next_cursor_from_last", "next_url", "has_more", "items")(_body_path)
    _headers = field_validator("next_header")(_header)

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
        return self


class CatalogMeta(_Model):
    """The ``catalog`` block of an entry."""

    categories: list[Category] = Field(min_length=1)
    #: The provider's own documentation this entry was written from (https).
    docs_url: str = Field(pattern=r"^https://[^\s/]+(/\S*)?$")
    description: str = Field(min_length=1)
    #: The hosts the provider documents for its OAuth endpoints and API (``*.domain`` for subdomains).
    hosts: list[str] = Field(min_length=1)
    #: Steps a person follows: where to register the redirect URI, what to paste where.
    setup: list[str] = Field(min_length=1)
    #: Scopes a user may add to the entry's default ``auth.scopes``.
    optional_scopes: list[Scope] = Field(default_factory=list)
    rate_limit: RateLimit
    pagination: Pagination | None = None
    #: A simple-icons slug (https://simpleicons.org), when the set has the brand.
    icon: str | None = Field(default=None, pattern=r"^[a-z0-9]+$")

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not _HOST.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name or *.domain")
        return value

    @field_validator("categories")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists a category twice")
        return value
