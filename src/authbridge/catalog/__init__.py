"""The catalog: ready integration specs for common providers, each with setup notes and provider behaviour.

Each entry is one YAML file under ``authbridge/catalog/entries/``: an integration spec (validated by
:func:`authbridge.spec.validate_spec`) plus a ``catalog`` block (:class:`CatalogMeta`). An entry never
holds OAuth app credentials: :func:`integration_from` adds the user's own.

```
entry = get_entry("github")
spec = integration_from(entry, client_id="Iv1.abc", client_secret="...", scopes=["repo"])
```
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import typing

import pydantic
import yaml

from authbridge.auth import plugin_for
from authbridge.catalog.models import CATEGORIES, CatalogMeta, Scope
from authbridge.errors import ErrorItem, NotFoundError, SpecError
from authbridge.spec import Integration, Pagination, RateLimit, WaitFrom, spec_to_dict, validate_spec

__all__ = [
    "CATEGORIES",
    "CatalogEntry",
    "CatalogEntryNotFound",
    "CatalogMeta",
    "Pagination",
    "RateLimit",
    "Scope",
    "WaitFrom",
    "entries",
    "get_entry",
    "integration_from",
    "load_entry",
    "search",
]

#: The spec's placeholders for OAuth app credentials: an entry must use these, never real ones.
CLIENT_ID_PLACEHOLDER = "your-client-id"
CLIENT_SECRET_PLACEHOLDER = "your-client-secret"  # noqa: S105 - a placeholder


class CatalogEntryNotFound(NotFoundError):
    """No catalog entry has this key."""


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    """One catalog entry: its spec (with placeholder OAuth app credentials) and its catalog metadata."""

    spec: Integration
    meta: CatalogMeta

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def auth_style(self) -> str:
        """``oauth2 (authorization_code)``, ``api_token``, ... as a person reads it."""
        return plugin_for(self.spec.auth).style(self.spec)

    @property
    def default_scopes(self) -> list[str]:
        return plugin_for(self.spec.auth).scopes(self.spec)

    @property
    def takes_scopes(self) -> bool:
        """Whether the user may choose its scopes (OAuth 2.0 and the JWT bearer grant; not OAuth 1.0a or a token)."""
        return "scopes" in type(self.spec.auth).model_fields

    @property
    def needs_client(self) -> bool:
        """Whether adding it takes the user's OAuth app (client ID and secret)."""
        app = plugin_for(self.spec.auth).client_app(self.spec)
        return app is not None and app[0] == CLIENT_ID_PLACEHOLDER

    def summary(self) -> dict[str, typing.Any]:
        """The entry in a list: key, name, categories, auth style, docs URL, icon."""
        return {
            "key": self.key,
            "name": self.name,
            "description": self.meta.description,
            "categories": list(self.meta.categories),
            "auth": self.auth_style,
            "docs_url": self.meta.docs_url,
            "icon": self.meta.icon,
        }

    def to_dict(self) -> dict[str, typing.Any]:
        """The whole entry: the summary, the catalog metadata and the spec."""
        return {
            **self.summary(),
            "catalog": self.meta.model_dump(mode="json", exclude_none=True),
            "default_scopes": self.default_scopes,
            "needs_client": self.needs_client,
            "spec": spec_to_dict(self.spec),
        }


def _meta_errors(exc: pydantic.ValidationError) -> list[ErrorItem]:
    return [ErrorItem(".".join(["catalog", *(str(p) for p in e["loc"])]), e["msg"]) for e in exc.errors()]


def _check(spec: Integration, meta: CatalogMeta) -> list[ErrorItem]:
    """Rules an entry follows beyond a valid spec."""
    errors: list[ErrorItem] = []
    plugin = plugin_for(spec.auth)
    app = plugin.client_app(spec)
    if app is not None:
        if app[1] is not None and app[1] != CLIENT_SECRET_PLACEHOLDER:
            errors.append(
                ErrorItem("auth.client_secret", f"an entry holds {CLIENT_SECRET_PLACEHOLDER!r}, nothing else")
            )
        names = {s.name for s in meta.optional_scopes}
        if names & set(plugin.scopes(spec)):
            errors.append(ErrorItem("catalog.optional_scopes", "lists a default scope (auth.scopes) again"))
    if spec.rate_limit is None or spec.rate_limit.documented is None:
        errors.append(ErrorItem("rate_limit.documented", "an entry says the provider's documented rate limit"))
    if spec.test is None:
        errors.append(ErrorItem("test", "an entry has a test request that proves a connection works"))
    elif spec.test.method not in ("GET", "HEAD"):
        errors.append(ErrorItem("test.method", "an entry's test request only reads: GET or HEAD"))
    return errors


def load_entry(text: str, *, source: str | None = None) -> CatalogEntry:
    """Read one entry from YAML: a spec plus a ``catalog`` block.

    Raises:
        SpecError: every problem of the spec and of the catalog block.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError([ErrorItem("", f"not valid YAML: {exc}")], source=source) from None
    if not isinstance(data, dict):
        raise SpecError([ErrorItem("", "an entry is a mapping")], source=source)
    raw_meta = data.pop("catalog", None)
    errors: list[ErrorItem] = []
    meta: CatalogMeta | None = None
    spec: Integration | None = None
    try:
        meta = CatalogMeta.model_validate(raw_meta)
    except pydantic.ValidationError as exc:
        errors += _meta_errors(exc)
    try:
        spec = validate_spec(data, source=source)
    except SpecError as exc:
        errors += exc.errors
    if spec is not None and meta is not None:
        errors += _check(spec, meta)
    if errors or spec is None or meta is None:
        raise SpecError(errors, source=source)
    return CatalogEntry(spec=spec, meta=meta)


@functools.cache
def entries() -> tuple[CatalogEntry, ...]:
    """Every entry shipped with the package, by key."""
    folder = importlib.resources.files("authbridge.catalog") / "entries"
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".yaml"):
            entry = load_entry(item.read_text(encoding="utf-8"), source=item.name)
            if f"{entry.key}.yaml" != item.name:
                raise SpecError(
                    [ErrorItem("key", f"the file of entry {entry.key!r} is {entry.key}.yaml")], source=item.name
                )
            found.append(entry)
    return tuple(sorted(found, key=lambda e: e.key))


def get_entry(key: str) -> CatalogEntry:
    """The entry called ``key``.

    Raises:
        CatalogEntryNotFound: no such entry (the message suggests ``catalog list``).
    """
    for entry in entries():
        if entry.key == key:
            return entry
    raise CatalogEntryNotFound(f"no catalog entry {key!r} (see `authbridge catalog list`)")


def search(text: str | None = None, category: str | None = None) -> list[CatalogEntry]:
    """Entries whose key, name or description contains ``text`` (any case), in ``category`` if given."""
    needle = (text or "").strip().lower()
    return [
        e
        for e in entries()
        if (category is None or category in e.meta.categories)
        and (not needle or needle in f"{e.key} {e.name} {e.meta.description}".lower())
    ]


def integration_from(
    entry: CatalogEntry,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    scopes: typing.Sequence[str] | None = None,
    key: str | None = None,
    name: str | None = None,
) -> Integration:
    """The entry's spec with the user's OAuth app credentials, scopes, key and name.

    ``scopes`` replaces the entry's default scopes when its auth type has scopes (OAuth 2.0, the JWT
    bearer grant); an empty list is taken as none for a type without (OAuth 1.0a, a token).

    Raises:
        SpecError: an OAuth app credential is missing or not taken, scopes are not taken, or the result
            does not validate.
    """
    data = spec_to_dict(entry.spec)
    errors: list[ErrorItem] = []
    if key is not None:
        data["key"] = key
    if name is not None:
        data["name"] = name
    auth = dict(data["auth"])
    if entry.needs_client:
        if not client_id:
            errors.append(ErrorItem("client_id", f"{entry.name} needs the client ID of your OAuth app"))
        if not client_secret:
            errors.append(ErrorItem("client_secret", f"{entry.name} needs the client secret of your OAuth app"))
        auth["client_id"], auth["client_secret"] = client_id, client_secret
    elif client_id or client_secret:
        errors.append(
            ErrorItem("client_id", f"{entry.name} ({entry.auth_style}) takes no OAuth app: each account brings its own")
        )
    if scopes is not None and entry.takes_scopes:
        auth["scopes"] = list(scopes)
    elif scopes:  # an auth type without scopes (OAuth 1.0a, a token) takes an empty list as none
        errors.append(ErrorItem("scopes", f"{entry.name} ({entry.auth_style}) has no scopes to give"))
    data["auth"] = auth
    if errors:
        raise SpecError(errors)
    return validate_spec(data)
