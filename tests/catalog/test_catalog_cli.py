"""``authbridge catalog``: list (search, category), show, add (the user's OAuth app), docs (write and --check)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from authbridge.catalog.docs import render_markdown
from authbridge.cli import app
from authbridge.spec import OAuth2Auth
from authbridge.store import IntegrationRecord, Store
from tests.test_cli import with_store

REPO = Path(__file__).resolve().parents[2]
SECRET = "cs-catalog-cli-4d2a91"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Variables for a CLI on a SQLite data dir in ``tmp_path``."""
    return {"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data")}


def invoke(runner: CliRunner, env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, list(args), env=env, input=stdin, catch_exceptions=False)


def test_list_search_and_category(runner: CliRunner, env: dict[str, str]) -> None:
    listed = invoke(runner, env, "catalog", "list")
    assert listed.exit_code == 0 and "salesforce" in listed.stdout and "stripe" in listed.stdout
    crm = json.loads(invoke(runner, env, "catalog", "list", "--category", "crm", "--json").stdout)
    assert {row["key"] for row in crm} >= {"salesforce", "hubspot"} and all("crm" in r["categories"] for r in crm)
    found = json.loads(invoke(runner, env, "catalog", "list", "--search", "graph", "--json").stdout)
    assert {row["key"] for row in found} >= {"microsoftgraph", "microsoftgraphapp"}
    bad = invoke(runner, env, "catalog", "list", "--category", "toys")
    assert bad.exit_code != 0 and "is not a category" in bad.stderr


def test_show(runner: CliRunner, env: dict[str, str]) -> None:
    shown = invoke(runner, env, "catalog", "show", "shopify")
    assert shown.exit_code == 0
    assert "https://shopify.dev/docs/apps/build/authentication-authorization" in shown.stdout
    assert "1. In the Shopify Partner Dashboard" in shown.stdout
    assert "default scopes: read_products" in shown.stdout and "X-Shopify-Access-Token" in shown.stdout
    as_json = json.loads(invoke(runner, env, "catalog", "show", "shopify", "--json").stdout)
    assert as_json["spec"]["pagination"]["type"] == "link"
    missing = invoke(runner, env, "catalog", "show", "nope")
    assert missing.exit_code != 0 and "no catalog entry 'nope'" in missing.stderr


def test_add_creates_the_integration_with_the_users_app(runner: CliRunner, env: dict[str, str]) -> None:
    added = invoke(
        runner,
        env,
        *("catalog", "add", "hubspot", "--client-id", "hs-id", "--client-secret", SECRET),
        *("--scopes", "oauth crm.objects.deals.read", "--key", "hubspotsales"),
    )
    assert added.exit_code == 0, added.stderr
    assert "created: hubspotsales from catalog entry hubspot" in added.stderr
    assert "register this redirect URI with HubSpot" in added.stderr
    assert SECRET not in added.stdout + added.stderr

    async def load(store: Store) -> IntegrationRecord:
        return await store.integrations.get("hubspotsales")

    record = with_store(env, load)
    assert isinstance(record.spec.auth, OAuth2Auth)
    assert record.spec.auth.client_id == "hs-id" and record.spec.client_secret == SECRET
    assert record.spec.auth.scopes == ["oauth", "crm.objects.deals.read"]
    again = invoke(
        runner, env, "catalog", "add", "hubspot", "--client-id", "x", "--client-secret", "y", "--key", "hubspotsales"
    )
    assert again.exit_code != 0


def test_add_asks_for_the_secret_when_left_out(runner: CliRunner, env: dict[str, str]) -> None:
    added = invoke(runner, env, "catalog", "add", "github", "--client-id", "Iv1.x", stdin=SECRET + "\n")
    assert added.exit_code == 0, added.stderr
    assert SECRET not in added.stdout + added.stderr


def test_add_without_an_oauth_app_stores_nothing(runner: CliRunner, env: dict[str, str]) -> None:
    refused = invoke(runner, env, "catalog", "add", "github")
    assert refused.exit_code != 0
    assert "client_id: GitHub needs the client ID of your OAuth app" in refused.stderr
    listed = invoke(runner, env, "integrations", "list", "--json")
    assert json.loads(listed.stdout) == []


def test_add_a_token_entry(runner: CliRunner, env: dict[str, str]) -> None:
    added = invoke(runner, env, "catalog", "add", "openai")
    assert added.exit_code == 0, added.stderr
    assert "redirect URI" not in added.stderr


def test_docs_writes_and_checks(runner: CliRunner, env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "catalog.md"
    stale = invoke(runner, env, "catalog", "docs", "--output", str(out), "--check")
    assert stale.exit_code == 1 and "is stale" in stale.stderr
    assert invoke(runner, env, "catalog", "docs", "--output", str(out)).exit_code == 0
    assert out.read_text() == render_markdown()
    assert invoke(runner, env, "catalog", "docs", "--output", str(out), "--check").exit_code == 0


def test_the_module_writes_the_docs(tmp_path: Path) -> None:
    out = tmp_path / "catalog.md"
    subprocess.run([sys.executable, "-m", "authbridge.catalog.docs", str(out)], check=True, cwd=REPO)
    assert out.read_text() == render_markdown()
