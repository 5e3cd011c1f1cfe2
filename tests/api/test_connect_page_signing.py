"""The hosted connect page for a signing auth type: the end user enters an AWS key (the session token optional),
then replaces it in place with temporary credentials through a reconnect session."""

from __future__ import annotations

import typing

import pytest

from tests.api.test_connect_page import PUBLIC_URL, admin_headers, csrf_of, new_session, open_link
from tests.conftest import ClientFactory, portal, store_of

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

AWS = {
    "key": "awshosted",
    "name": "AWS hosted",
    "auth": {"type": "aws_sigv4", "region": "eu-west-1", "service": "sts"},
    "request": {"base_url": "https://sts.eu-west-1.amazonaws.com"},
}
SECRET, TEMP_SECRET, TEMP_TOKEN = "hosted/SECRET+one", "hosted/SECRET+two", "hosted-session-TOKEN=="


@pytest.fixture
def client(make_client: ClientFactory, env: dict[str, str]) -> TestClient:
    started = make_client(env)
    assert started.post("/integrations", json=AWS, headers=admin_headers(started)).status_code == 201
    return started


@pytest.fixture
def env(app_env: dict[str, str]) -> dict[str, str]:
    return {**app_env, "AUTHBRIDGE_PUBLIC_URL": PUBLIC_URL, "AUTHBRIDGE_ALLOWED_RETURN_ORIGINS": "https://app.example"}


def _stored(client: TestClient, connection_id: str) -> dict[str, str]:
    creds = portal(client).call(store_of(client).credentials.load, connection_id)
    assert creds is not None
    return dict(creds.inputs)


def test_connect_then_replace_with_temporary_credentials(client: TestClient) -> None:
    """Connect with a long-term key (no token), then reconnect in place with a key and session token."""
    open_link(client, new_session(client, allowed_integrations=["awshosted"], parameters={})["connect_url"])
    form = client.get("/connect/i/awshosted")
    assert 'name="cred.access_key_id"' in form.text and 'name="cred.session_token"' in form.text
    done = client.post(
        "/connect/i/awshosted",
        data={
            "csrf": csrf_of(form),
            "cred.access_key_id": "AKIDHOSTED",
            "cred.secret_access_key": SECRET,
            "cred.session_token": "",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    admin = admin_headers(client)
    (made,) = client.get("/connections", headers=admin).json()["items"]
    assert made["status"] == "active"
    assert _stored(client, made["id"]) == {"access_key_id": "AKIDHOSTED", "secret_access_key": SECRET}

    session = new_session(client, allowed_integrations=None, reconnect=made["id"], parameters={})
    open_link(client, session["connect_url"])
    page = client.get("/connect/")
    assert SECRET not in page.text
    again = client.post(
        "/connect/i/awshosted",
        data={
            "csrf": csrf_of(page),
            "cred.access_key_id": "ASIAHOSTED",
            "cred.secret_access_key": TEMP_SECRET,
            "cred.session_token": TEMP_TOKEN,
        },
        follow_redirects=False,
    )
    assert again.status_code == 303, again.text
    assert _stored(client, made["id"]) == {
        "access_key_id": "ASIAHOSTED",
        "secret_access_key": TEMP_SECRET,
        "session_token": TEMP_TOKEN,
    }
    shown = client.get(f"/connections/{made['id']}", headers=admin).text
    assert TEMP_SECRET not in shown and TEMP_TOKEN not in shown
