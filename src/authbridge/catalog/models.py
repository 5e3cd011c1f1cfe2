"""The catalog metadata of an entry: how a person sets the provider up, and how the provider pages and limits.

An entry file is an integration spec (see :mod:`authbridge.spec`) with one more top-level block,
``catalog``, validated by :class:`CatalogMeta`. The provider's rate limits and paging are the spec's own
``rate_limit`` and ``pagination`` blocks (:mod:`authbridge.spec.provider`): every entry has a ``rate_limit``
with its ``documented`` limit.
"""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CATEGORIES", "CatalogMeta", "Scope"]

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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scope(_Model):
    """An OAuth scope a user may add, and what it grants."""

    name: str = Field(min_length=1)
    description: str = Field(min_length=1)


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
    #: A simple-icons slug (https://simpleicons.org) whose SVG the console bundles; left out when the set
    #: lacks the brand (the console shows a letter). tests/console/test_catalog_icons.py checks both ways.
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
