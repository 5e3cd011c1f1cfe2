"""Every catalog entry: valid, complete, https on its provider's documented hosts, a read-only test, round-trips."""

from __future__ import annotations

import itertools
import re
import typing
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from authbridge.catalog import CatalogEntry, entries, get_entry, integration_from, load_entry, search
from authbridge.catalog.docs import render_markdown
from authbridge.errors import NotFoundError, SpecError
from authbridge.spec import OAuth2Auth, dump_spec, load_spec, spec_to_dict

REPO = Path(__file__).resolve().parents[2]
ENTRIES = entries()
IDS = [e.key for e in ENTRIES]
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def test_the_catalog_has_the_entries_written_so_far() -> None:
    """Every YAML file under entries/ loads (a broken one raises) and the count does not silently drop."""
    files = sorted(p.stem for p in (REPO / "src/authbridge/catalog/entries").glob("*.yaml"))
    assert files == IDS
    assert len(ENTRIES) >= 89


def _values(entry: CatalogEntry) -> list[dict[str, str]]:
    """Parameter values to render the entry's URLs with: every enum member, else the default, example or 'acme'."""
    choices = [[(p.name, v) for v in (p.enum or [p.default or p.example or "acme"])] for p in entry.spec.parameters]
    return [dict(combo) for combo in itertools.product(*choices)] or [{}]


def _urls(entry: CatalogEntry) -> dict[str, str]:
    auth = entry.spec.auth
    urls: dict[str, str] = {}
    if hasattr(auth, "token_url"):
        for field in ("authorization_url", "token_url", "revoke_url", "issuer"):
            value = getattr(auth, field, None)
            if isinstance(value, str):
                urls[f"auth.{field}"] = value
    if isinstance(entry.spec.request.base_url, str):
        urls["request.base_url"] = entry.spec.request.base_url
    return urls


def _on_hosts(host: str, patterns: list[str]) -> bool:
    return any(host == p or (p.startswith("*.") and host.endswith(p[1:])) for p in patterns)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_endpoints_are_https_on_the_providers_documented_hosts(entry: CatalogEntry) -> None:
    """Each URL, rendered with every enum value (or the example), is https on a host the entry documents.

    A base URL taken from the token response (``{credentials.instance_url}``) is the provider's answer:
    its host is not known in advance, so only the URLs the spec writes are checked.
    """
    urls = _urls(entry)
    assert urls, "an entry has at least a base URL"
    for path, template in urls.items():
        if template.startswith("{credentials."):
            continue
        for values in _values(entry):
            url = _PLACEHOLDER.sub(lambda m, v=values: v.get(m[1], "x"), template)  # type: ignore[misc]
            parts = urlsplit(url)
            assert parts.scheme == "https", f"{path}: {url}"
            assert parts.hostname is not None and _on_hosts(parts.hostname, entry.meta.hosts), f"{path}: {url}"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_a_host_parameter_is_bounded_by_the_documented_hosts(entry: CatalogEntry) -> None:
    """A parameter naming a whole host lists hosts, every one of them among the entry's documented hosts."""
    for parameter in entry.spec.parameters:
        if parameter.hosts is not None:
            assert all(h in entry.meta.hosts for h in parameter.hosts), parameter.name


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_the_test_request_only_reads(entry: CatalogEntry) -> None:
    """The request that proves a connection works is a GET or HEAD."""
    assert entry.spec.test is not None
    assert entry.spec.test.method in ("GET", "HEAD")


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_the_entry_is_complete(entry: CatalogEntry) -> None:
    """Docs URL cited in the file, setup steps, a rate-limit description; OAuth entries take the user's own app."""
    text = (REPO / "src/authbridge/catalog/entries" / f"{entry.key}.yaml").read_text()
    assert entry.meta.docs_url in text.split("catalog:")[0] or "Written from" in text
    assert entry.meta.setup and entry.spec.rate_limit and entry.spec.rate_limit.documented
    if isinstance(entry.spec.auth, OAuth2Auth):
        assert entry.needs_client
        assert entry.spec.client_secret == "your-client-secret"
        if entry.spec.auth.grant_type == "authorization_code":
            assert any("redirect" in step.lower() or "callback" in step.lower() for step in entry.meta.setup)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_the_entry_round_trips_through_export(entry: CatalogEntry) -> None:
    """The integration made from the entry, exported as YAML and loaded again, is the same spec."""
    spec = integration_from(entry, client_id="cid-1", client_secret="cs-2") if entry.needs_client else entry.spec
    again = load_spec(dump_spec(spec))
    assert spec_to_dict(again) == spec_to_dict(spec)


def test_docs_catalog_md_is_current() -> None:
    """docs/catalog.md is what `authbridge catalog docs` writes now: regenerate it after editing an entry."""
    assert (REPO / "docs/catalog.md").read_text(encoding="utf-8") == render_markdown()


def test_the_docs_table_lists_every_entry_with_its_docs_link() -> None:
    text = render_markdown()
    for entry in ENTRIES:
        assert f"| `{entry.key}` |" in text and entry.meta.docs_url in text


# -- the loader's rules --------------------------------------------------------------------------

GOOD = (REPO / "src/authbridge/catalog/entries/github.yaml").read_text()


def _changed(change: typing.Callable[[dict[str, typing.Any]], None]) -> str:
    data = yaml.safe_load(GOOD)
    change(data)
    return yaml.safe_dump(data)


def test_a_write_as_the_test_request_is_refused() -> None:
    text = _changed(lambda d: d["test"].update(method="POST"))
    with pytest.raises(SpecError, match=r"test.method: an entry's test request only reads: GET or HEAD"):
        load_entry(text)


def test_an_entry_without_a_test_request_is_refused() -> None:
    text = _changed(lambda d: d.pop("test"))
    with pytest.raises(SpecError, match=r"test: an entry has a test request"):
        load_entry(text)


def test_a_real_client_secret_in_an_entry_is_refused() -> None:
    text = _changed(lambda d: d["auth"].update(client_secret="s3cr3t-from-someone"))
    with pytest.raises(SpecError, match=r"auth.client_secret: an entry holds 'your-client-secret'") as caught:
        load_entry(text)
    assert "s3cr3t-from-someone" not in str(caught.value)


def test_catalog_block_problems_are_listed_with_the_specs() -> None:
    """An unknown category, incomplete pagination and an invalid spec field are all reported at once."""

    def change(d: dict[str, typing.Any]) -> None:
        d["catalog"]["categories"] = ["nonsense"]
        d["pagination"] = {"type": "cursor", "cursor_param": "after"}
        d["auth"]["token_url"] = "ftp://github.com/x"

    with pytest.raises(SpecError) as caught:
        load_entry(_changed(change))
    message = str(caught.value)
    assert "catalog.categories.0" in message
    assert "cursor pagination needs next_cursor or next_cursor_from_last or next_header" in message
    assert "auth.token_url" in message


def test_a_missing_catalog_block_is_refused() -> None:
    with pytest.raises(SpecError, match=r"catalog: Input should be a valid dictionary"):
        load_entry(_changed(lambda d: d.pop("catalog")))


def test_wait_from_takes_one_source() -> None:
    def change(d: dict[str, typing.Any]) -> None:
        d["rate_limit"]["wait_from"] = [{"header": "Retry-After", "body": "retry_after"}]

    with pytest.raises(SpecError, match=r"give exactly one of header or body"):
        load_entry(_changed(change))


def test_an_optional_scope_repeating_a_default_is_refused() -> None:
    def change(d: dict[str, typing.Any]) -> None:
        d["catalog"]["optional_scopes"].append({"name": "read:user", "description": "again"})

    with pytest.raises(SpecError, match=r"catalog.optional_scopes: lists a default scope"):
        load_entry(_changed(change))


# -- search and integration_from ------------------------------------------------------------------


def test_search_by_text_and_category() -> None:
    assert [e.key for e in search("github")] == ["github", "githubtoken"]
    assert {e.key for e in search(None, "crm")} >= {"salesforce", "hubspot", "pipedrive", "zohocrm"}
    assert all("crm" in e.meta.categories for e in search(None, "crm"))
    assert [e.key for e in search("SALESFORCE", "crm")] == ["salesforce", "salesforcejwt"]
    assert search("salesforce", "ai") == []


def test_unknown_entry() -> None:
    with pytest.raises(NotFoundError, match=r"no catalog entry 'nope' \(see `authbridge catalog list`\)"):
        get_entry("nope")


def test_integration_from_puts_the_users_app_scopes_and_key() -> None:
    spec = integration_from(get_entry("github"), client_id="Iv1.x", client_secret="cs-9", scopes=["repo"], key="gh2")
    assert spec.key == "gh2" and spec.client_secret == "cs-9"
    assert isinstance(spec.auth, OAuth2Auth) and spec.auth.client_id == "Iv1.x" and spec.auth.scopes == ["repo"]
    assert "cs-9" not in repr(spec) and "cs-9" not in dump_spec(spec)


def test_integration_from_needs_the_oauth_app() -> None:
    with pytest.raises(SpecError, match=r"client_secret: GitHub needs the client secret of your OAuth app"):
        integration_from(get_entry("github"), client_id="Iv1.x")


def test_integration_from_refuses_oauth_fields_for_a_token_entry() -> None:
    with pytest.raises(SpecError, match=r"client_id: Stripe \(api_token\) takes no OAuth app"):
        integration_from(get_entry("stripe"), client_id="x", client_secret="y")
    with pytest.raises(SpecError, match=r"scopes: Stripe \(api_token\) has no scopes to give"):
        integration_from(get_entry("stripe"), scopes=["read"])
    assert integration_from(get_entry("stripe"), key="stripe2").key == "stripe2"


def test_integration_from_takes_scopes_where_the_auth_type_has_them() -> None:
    """A JWT bearer entry has no OAuth app but has scopes: the user's replace the defaults. OAuth 1.0a has none."""
    google = get_entry("googlecloudserviceaccount")
    assert google.takes_scopes and not google.needs_client
    spec = integration_from(google, scopes=["https://www.googleapis.com/auth/devstorage.read_only"])
    assert spec.auth.scopes == ["https://www.googleapis.com/auth/devstorage.read_only"]  # type: ignore[union-attr]
    trello = get_entry("trellooauth")
    assert not trello.takes_scopes
    assert integration_from(trello, client_id="k", client_secret="s", scopes=[]).key == "trellooauth"
    with pytest.raises(SpecError, match=r"scopes: Trello \(OAuth 1.0a\) \(oauth1 \(three_legged, HMAC-SHA1\)\) has no"):
        integration_from(trello, client_id="k", client_secret="s", scopes=["read"])


def test_an_entry_says_its_documented_rate_limit() -> None:
    """Every entry carries the provider's documented limit in its spec's ``rate_limit``."""

    def change(d: dict[str, typing.Any]) -> None:
        d["rate_limit"].pop("documented")

    with pytest.raises(SpecError, match=r"rate_limit.documented: an entry says the provider's documented rate limit"):
        load_entry(_changed(change))
