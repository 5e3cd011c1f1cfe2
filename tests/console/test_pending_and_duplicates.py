"""Abandoned logins show as expired after the flow's 10 minutes; a second account of the same name is warned about.

Over HTTP against the ASGI app (the browser tests of the console are in ``test_new_user_browser.py``).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from pathlib import Path

from authbridge.console.accounts import status_of
from authbridge.spec import load_spec
from authbridge.store import ConnectionRecord
from tests.conftest import ClientFactory, portal, sqlite_env, store_of
from tests.console.test_account_pages import _post, _signed_in

CODE = """\
key: idp
name: IdP
auth:
  type: oauth2
  authorization_url: https://idp.example/authorize
  token_url: https://idp.example/token
  client_id: app
  client_secret: s3cret
request: {base_url: "https://api.example"}
"""
TOKEN = "key: tok\nname: Tok\nauth: {type: api_token}\nrequest: {base_url: https://api.example}\n"


def test_an_abandoned_login_shows_expired() -> None:
    """A pending account untouched for less than the flow's 10 minutes is pending; after, its badge says expired."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    spec = load_spec(CODE)

    def badge(age: timedelta) -> str:
        record = ConnectionRecord(
            id="c", integration_id="i", integration_key="idp", name="n", status="pending", parameters={},
            secret_names=frozenset(), last_error=None, warning=None, expires_at=None, last_refreshed_at=None,
            version=1, created_at=now - age, updated_at=now - age,
        )  # fmt: skip
        return status_of(record, spec, now).label

    assert badge(timedelta(minutes=9)) == "pending"
    assert badge(timedelta(minutes=10)) == "expired"


def test_a_second_account_of_the_same_name_is_warned_about(make_client: ClientFactory, tmp_path: Path) -> None:
    """The first submit of a taken name warns and creates nothing; submitting again creates the second one."""
    client = _signed_in(make_client, sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false"), TOKEN)
    store = store_of(client)
    first = _post(client, "/console/accounts/new?integration=tok", integration="tok", name="DEV", **{"cred.token": "a"})
    assert first.status_code == 303  # created: on to the account page
    again = _post(client, "/console/accounts/new?integration=tok", integration="tok", name="DEV", **{"cred.token": "b"})
    text = html.unescape(again.text)
    assert "already exists" in text and 'name="confirm_duplicate"' in text
    assert len(portal(client).call(lambda: store.connections.list(integration_key="tok"))) == 1
    confirmed = _post(
        client,
        "/console/accounts/new?integration=tok",
        integration="tok",
        name="DEV",
        confirm_duplicate="1",
        **{"cred.token": "b"},
    )
    assert confirmed.status_code == 303
    records = portal(client).call(lambda: store.connections.list(integration_key="tok"))
    assert [r.name for r in records] == ["DEV", "DEV"]


def test_a_provider_error_comes_with_a_hint_and_a_link_to_the_field(make_client: ClientFactory, tmp_path: Path) -> None:
    """An account whose last error is invalid_client says to check the secret, linking to that field of the form."""
    client = _signed_in(make_client, sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false"), CODE)
    store = store_of(client)
    record = portal(client).call(lambda: store.connections.create(integration_key="idp", name="x", parameters={}))
    error = "idp: token endpoint https://idp.example/token answered 401 invalid_client"
    portal(client).call(lambda: store.connections.set_status(record.id, "error", last_error=error))
    page = html.unescape(client.get(f"/console/accounts/{record.id}").text)
    assert "check the client secret" in page
    assert 'href="/console/integrations/idp/edit#f-oauth2-client_secret"' in page
    form = client.get("/console/integrations/idp/edit").text
    assert 'id="f-oauth2-client_secret"' in form
