"""Brand icons in "Add from catalog": bundled simple-icons files (CC0), each named by an entry, served as SVG images."""

from __future__ import annotations

import typing
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from authbridge.catalog import entries
from authbridge.console.catalog import ICONS_DIR, bundled_icons
from tests.conftest import ClientFactory, create_api_key, sqlite_env
from tests.console.test_http import _client, _sign_in

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

_SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def client(make_client: ClientFactory, tmp_path: Path) -> TestClient:
    """A signed-in console on a fresh SQLite service."""
    client = _client(make_client, sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false"))
    assert _sign_in(client, create_api_key(client)).status_code == 303
    return client


def test_every_bundled_icon_is_named_by_an_entry_and_the_licence_is_beside_them() -> None:
    named = {entry.meta.icon for entry in entries() if entry.meta.icon}
    bundled = bundled_icons()
    assert bundled, "no icons bundled"
    assert bundled <= named, f"icons no entry names: {sorted(bundled - named)}"
    assert {p.name for p in ICONS_DIR.iterdir() if p.suffix != ".svg"} == {"LICENSE.md", "README.md"}
    readme = (ICONS_DIR / "README.md").read_text()
    assert "simple-icons 16.37.0" in readme and "CC0" in readme
    assert "CC0 1.0 Universal" in (ICONS_DIR / "LICENSE.md").read_text()


def test_every_icon_an_entry_names_is_bundled() -> None:
    """An ``icon:`` names a file here; a brand simple-icons lacks gets no ``icon:`` line (the letter is shown)."""
    bundled = bundled_icons()
    dangling = sorted(f"{e.key}: {e.meta.icon}" for e in entries() if e.meta.icon and e.meta.icon not in bundled)
    assert dangling == [], f"entries name icons that are not bundled: {dangling}"
    assert any(e.meta.icon is None for e in entries())  # the letter badge's case still exists


def test_each_icon_is_a_plain_drawing_with_nothing_active_in_it() -> None:
    # The files are served from the console's origin: no script, no link, no external reference.
    for path in ICONS_DIR.glob("*.svg"):
        root = ET.fromstring(path.read_bytes())  # noqa: S314 - our own bundled files
        assert root.tag == f"{_SVG}svg", path.name
        for element in root.iter():
            assert element.tag in {f"{_SVG}svg", f"{_SVG}title", f"{_SVG}path"}, (path.name, element.tag)
            assert set(element.attrib) <= {"role", "viewBox", "d"}, (path.name, element.attrib)
        assert path.stat().st_size < 8_000, path.name


def test_the_catalog_shows_each_bundled_icon_and_a_letter_for_the_rest(client: TestClient) -> None:
    page = client.get("/console/catalog")
    assert page.status_code == 200
    bundled = bundled_icons()
    rows = {row.split('href="/console/catalog/', 1)[1].split('"', 1)[0]: row for row in page.text.split("<tr>")[2:]}
    assert len(rows) == len(entries())
    letters = 0
    for entry in entries():
        row = rows[entry.key]
        if entry.meta.icon in bundled:
            assert f'<img class="brand-icon" src="/console/static/icons/{entry.meta.icon}.svg" alt=""' in row
            assert 'class="badge"' not in row
        else:
            assert "<img" not in row and f'<span class="badge" aria-hidden="true">{entry.name[0]}</span>' in row
            letters += 1
    assert letters, "the letter fallback is no longer exercised by any entry"


def test_the_entry_page_shows_its_icon_only_when_bundled(client: TestClient) -> None:
    bundled = bundled_icons()
    with_icon = next(e for e in entries() if e.meta.icon in bundled)
    without = next(e for e in entries() if e.meta.icon not in bundled)
    shown = client.get(f"/console/catalog/{with_icon.key}").text
    assert f'src="/console/static/icons/{with_icon.meta.icon}.svg"' in shown
    assert 'class="brand-icon' not in client.get(f"/console/catalog/{without.key}").text


def test_icons_are_served_as_svg_images_and_nothing_else_is(client: TestClient) -> None:
    slug = sorted(bundled_icons())[0]
    icon = client.get(f"/console/static/icons/{slug}.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.content == (ICONS_DIR / f"{slug}.svg").read_bytes()
    # A signed-out visitor gets the same file (the sign-in page may show icons too).
    client.cookies.clear()
    assert client.get(f"/console/static/icons/{slug}.svg").status_code == 200
    # Hostile paths: an unknown slug, a walk out of the static folder, an encoded one.
    assert client.get("/console/static/icons/not-a-brand.svg").status_code == 404
    for hostile in ("/console/static/icons/../catalog.py", "/console/static/icons/..%2F..%2Fcatalog.py"):
        response = client.get(hostile)
        assert response.status_code == 404 and "def catalog_list" not in response.text
