"""The test authorization server works: plain httpx against the real process."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit

import httpx
import pytest

from tests.servers.fixtures import OAuthServer, run_oauth_server

REDIRECT_URI = OAuthServer.REDIRECT_URI


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def basic(client_id: str, secret: str, *, encode: bool = True) -> dict[str, str]:
    """HTTP Basic as RFC 6749 §2.3.1 wants it: id and secret form-encoded before base64."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}" if encode else f"{client_id}:{secret}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def redirect_params(response: httpx.Response, redirect_uri: str = REDIRECT_URI) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.split("?")[0] == redirect_uri
    return dict(parse_qsl(urlsplit(location).query))


def authorize(
    oauth: OAuthServer,
    client_id: str = OAuthServer.CONFIDENTIAL_ID,
    *,
    challenge: str | None = None,
    state: str = "the-state",
    redirect_uri: str = REDIRECT_URI,
    **extra: str,
) -> dict[str, str]:
    """GET the authorization endpoint with auto-approve on; the redirect's query parameters."""
    oauth.configure(auto_approve=True)
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": state, **extra}
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return redirect_params(httpx.get(oauth.authorize_url, params=params), redirect_uri)


def code_token(oauth: OAuthServer, **extra: str) -> dict[str, Any]:
    """A full code flow (PKCE, client_secret_basic); the token response."""
    verifier, challenge = pkce_pair()
    code = authorize(oauth, challenge=challenge)["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    response = httpx.post(
        oauth.token_url, data=data | extra, headers=basic(oauth.CONFIDENTIAL_ID, oauth.CONFIDENTIAL_SECRET)
    )
    assert response.status_code == 200, response.text
    token: dict[str, Any] = response.json()
    return token


def me(oauth: OAuthServer, access_token: str) -> httpx.Response:
    return httpx.get(oauth.me_url, headers={"Authorization": f"Bearer {access_token}"})


def refresh(oauth: OAuthServer, refresh_token: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return httpx.post(oauth.token_url, data=data, headers=basic(oauth.CONFIDENTIAL_ID, oauth.CONFIDENTIAL_SECRET))


def test_code_flow_with_pkce_and_client_secret_basic(oauth: OAuthServer) -> None:
    token = code_token(oauth)
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["scope"] == "read write"
    assert token["instance_url"] == oauth.base_url
    assert token["refresh_token"]
    response = me(oauth, token["access_token"])
    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "scope": "read write", "client_id": "confidential"}


def test_basic_credentials_must_be_form_encoded(oauth: OAuthServer) -> None:
    code = authorize(oauth)["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    raw = basic(oauth.CONFIDENTIAL_ID, oauth.CONFIDENTIAL_SECRET, encode=False)  # '+' decodes as a space
    response = httpx.post(oauth.token_url, data=data, headers=raw)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_code_flow_with_client_secret_post_and_scope(oauth: OAuthServer) -> None:
    verifier, challenge = pkce_pair()
    code = authorize(oauth, challenge=challenge, scope="read")["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_id": oauth.CONFIDENTIAL_ID,
        "client_secret": oauth.CONFIDENTIAL_SECRET,
    }
    response = httpx.post(oauth.token_url, data=data)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read"


def test_token_endpoint_accepts_get_with_query_parameters(oauth: OAuthServer) -> None:
    verifier, challenge = pkce_pair()
    code = authorize(oauth, challenge=challenge)["code"]
    params = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_id": oauth.CONFIDENTIAL_ID,
        "client_secret": oauth.CONFIDENTIAL_SECRET,
    }
    response = httpx.get(oauth.token_url, params=params)
    assert response.status_code == 200, response.text
    assert me(oauth, response.json()["access_token"]).status_code == 200


def test_public_client_with_pkce(oauth: OAuthServer) -> None:
    verifier, challenge = pkce_pair()
    code = authorize(oauth, oauth.PUBLIC_ID, challenge=challenge, redirect_uri="http://localhost:1/oauth/callback")[
        "code"
    ]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "http://localhost:1/oauth/callback",
        "code_verifier": verifier,
        "client_id": oauth.PUBLIC_ID,
    }
    response = httpx.post(oauth.token_url, data=data)
    assert response.status_code == 200, response.text
    token = response.json()
    assert me(oauth, token["access_token"]).json()["client_id"] == "public"
    again = httpx.post(
        oauth.token_url,
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": "public"},
    )
    assert again.status_code == 200, again.text


def test_wrong_pkce_verifier_is_invalid_grant(oauth: OAuthServer) -> None:
    code = authorize(oauth, challenge=pkce_pair()[1])["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    headers = basic(oauth.CONFIDENTIAL_ID, oauth.CONFIDENTIAL_SECRET)
    wrong = httpx.post(oauth.token_url, data=data | {"code_verifier": pkce_pair()[0]}, headers=headers)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    missing = httpx.post(oauth.token_url, data=data, headers=headers)
    assert missing.json()["error"] == "invalid_request"  # a challenge was sent: the verifier is required


def test_code_can_be_used_once(oauth: OAuthServer) -> None:
    code = authorize(oauth)["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    headers = basic(oauth.CONFIDENTIAL_ID, oauth.CONFIDENTIAL_SECRET)
    assert httpx.post(oauth.token_url, data=data, headers=headers).status_code == 200
    second = httpx.post(oauth.token_url, data=data, headers=headers)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"


def test_redirect_uri_any_loopback_port_but_nothing_else(oauth: OAuthServer) -> None:
    assert "code" in authorize(oauth, redirect_uri="http://127.0.0.1:54321/oauth/callback")
    oauth.configure(auto_approve=True)
    params = {"response_type": "code", "client_id": oauth.CONFIDENTIAL_ID, "redirect_uri": "https://evil.example/cb"}
    response = httpx.get(oauth.authorize_url, params=params)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_refresh_rotates_and_the_old_refresh_token_is_refused(oauth: OAuthServer) -> None:
    first = code_token(oauth)
    response = refresh(oauth, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["expires_in"] == 3600
    reused = refresh(oauth, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert refresh(oauth, second["refresh_token"]).status_code == 200
    assert oauth.stats()["revoked_tokens"] == 2  # the two rotated-out refresh tokens


def test_client_credentials(oauth: OAuthServer) -> None:
    data = {"grant_type": "client_credentials", "scope": "read"}
    response = httpx.post(oauth.token_url, data=data, headers=basic(oauth.CONFIDENTIAL_ID, oauth.CONFIDENTIAL_SECRET))
    assert response.status_code == 200, response.text
    token = response.json()
    assert "refresh_token" not in token
    assert token["scope"] == "read"
    assert me(oauth, token["access_token"]).json() == {
        "sub": "confidential",
        "scope": "read",
        "client_id": "confidential",
    }
    public = httpx.post(oauth.token_url, data={"grant_type": "client_credentials", "client_id": oauth.PUBLIC_ID})
    assert public.json()["error"] == "unauthorized_client"


def test_password_grant(oauth: OAuthServer) -> None:
    data = {"grant_type": "password", "username": oauth.USERNAME, "password": oauth.PASSWORD}
    headers = basic(oauth.CONFIDENTIAL_ID, oauth.CONFIDENTIAL_SECRET)
    response = httpx.post(oauth.token_url, data=data, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"]
    assert me(oauth, response.json()["access_token"]).json()["sub"] == "alice"
    wrong = httpx.post(oauth.token_url, data=data | {"password": "nope"}, headers=headers)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"


def test_revoking_tokens(oauth: OAuthServer) -> None:
    headers = basic(oauth.CONFIDENTIAL_ID, oauth.CONFIDENTIAL_SECRET)
    token = code_token(oauth)
    response = httpx.post(oauth.revoke_url, data={"token": token["access_token"]}, headers=headers)
    assert response.status_code == 200
    rejected = me(oauth, token["access_token"])
    assert rejected.status_code == 401
    assert rejected.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert refresh(oauth, token["refresh_token"]).status_code == 200  # revoking an access token keeps the refresh

    other = code_token(oauth)
    data = {"token": other["refresh_token"], "token_type_hint": "refresh_token"}
    assert httpx.post(oauth.revoke_url, data=data, headers=headers).status_code == 200
    assert refresh(oauth, other["refresh_token"]).json()["error"] == "invalid_grant"
    assert me(oauth, other["access_token"]).status_code == 401  # and a refresh token takes its access token along
    unknown = httpx.post(oauth.revoke_url, data={"token": "never-issued"}, headers=headers)
    assert unknown.status_code == 200  # RFC 7009 §2.2
    assert oauth.stats()["revocations"] == 3


def test_unknown_and_expired_tokens_are_401(oauth: OAuthServer) -> None:
    assert me(oauth, "never-issued").status_code == 401
    token = code_token(oauth)
    assert oauth.stats()["active_access_tokens"] == 1
    assert oauth.expire_tokens() == 1
    assert oauth.stats()["active_access_tokens"] == 0
    expired = me(oauth, token["access_token"])
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    assert refresh(oauth, token["refresh_token"]).status_code == 200  # refresh tokens do not expire


def test_token_ttl_is_configurable(oauth: OAuthServer) -> None:
    oauth.configure(token_ttl=1)
    token = code_token(oauth)
    assert token["expires_in"] == 1
    time.sleep(1.1)
    assert me(oauth, token["access_token"]).status_code == 401


def consent_form(page: str) -> tuple[str, dict[str, str]]:
    """The consent form's action and hidden fields, and proof that the labelled inputs and buttons are there."""
    form = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', page, re.S)
    assert form is not None, page
    body = form.group(2)
    for name in ("username", "password"):
        assert re.search(rf'<label for="{name}">', body) and re.search(rf'<input id="{name}" name="{name}"', body)
    assert re.search(r'<button type="submit" name="action" value="approve">Approve</button>', body)
    assert re.search(r'<button type="submit" name="action" value="deny">Deny</button>', body)
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', body)
    return html.unescape(form.group(1)), {html.unescape(k): html.unescape(v) for k, v in hidden}


def consent_page(oauth: OAuthServer, **extra: str) -> tuple[str, dict[str, str]]:
    params = {"response_type": "code", "client_id": oauth.CONFIDENTIAL_ID, "redirect_uri": REDIRECT_URI, **extra}
    page = httpx.get(oauth.authorize_url, params=params)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    return consent_form(page.text)


def test_consent_form_approve(oauth: OAuthServer) -> None:
    verifier, challenge = pkce_pair()
    state = 'a&b=<c> "d"'
    action, fields = consent_page(oauth, state=state, code_challenge=challenge, code_challenge_method="S256")
    assert fields["state"] == state
    url = httpx.URL(oauth.base_url).join(action)
    wrong = httpx.post(url, data=fields | {"username": "alice", "password": "x", "action": "approve"})
    assert wrong.status_code == 401
    assert "Invalid username or password." in wrong.text
    consent_form(wrong.text)  # the page is shown again
    approve = httpx.post(url, data=fields | {"username": "alice", "password": "wonderland", "action": "approve"})
    params = redirect_params(approve)
    assert params["state"] == state
    assert "iss" not in params
    data = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT_URI}
    headers = basic(oauth.CONFIDENTIAL_ID, oauth.CONFIDENTIAL_SECRET)
    response = httpx.post(oauth.token_url, data=data | {"code_verifier": verifier}, headers=headers)
    assert response.status_code == 200, response.text


def test_consent_form_deny(oauth: OAuthServer) -> None:
    action, fields = consent_page(oauth, state="s1")
    deny = httpx.post(httpx.URL(oauth.base_url).join(action), data=fields | {"action": "deny"})
    params = redirect_params(deny)
    assert params["error"] == "access_denied"
    assert params["error_description"]
    assert params["state"] == "s1"
    assert "code" not in params


def test_iss_when_configured(oauth: OAuthServer) -> None:
    oauth.configure(issuer=oauth.issuer)
    assert authorize(oauth)["iss"] == oauth.issuer
    oauth.configure(auto_approve=False)
    action, fields = consent_page(oauth, state="s2")
    deny = httpx.post(httpx.URL(oauth.base_url).join(action), data=fields | {"action": "deny"})
    assert redirect_params(deny)["iss"] == oauth.issuer
    oauth.reset()
    assert "iss" not in authorize(oauth)


def test_iss_from_the_command_line() -> None:
    with run_oauth_server("--issuer", "https://idp.example", "--auto-approve", "--token-ttl", "60") as server:
        params = {"response_type": "code", "client_id": server.CONFIDENTIAL_ID, "redirect_uri": REDIRECT_URI}
        assert redirect_params(httpx.get(server.authorize_url, params=params))["iss"] == "https://idp.example"
        server.reset()  # the command-line options are the defaults a reset returns to
        assert server.configure()["token_ttl"] == 60
        data = {"grant_type": "client_credentials"}
        token = httpx.post(
            server.token_url, data=data, headers=basic(server.CONFIDENTIAL_ID, server.CONFIDENTIAL_SECRET)
        )
        assert token.json()["expires_in"] == 60


def test_custom_login(oauth: OAuthServer) -> None:
    posted = httpx.post(oauth.custom_login_url, json={"user": "alice", "password": "wonderland"})
    assert posted.status_code == 200
    data = posted.json()["data"]
    assert data["validSeconds"] == 3600
    fetched = httpx.get(oauth.custom_login_url, params={"user": "alice", "password": "wonderland"})
    assert fetched.status_code == 200
    assert fetched.json()["data"]["sessionToken"] != data["sessionToken"]
    wrong = httpx.post(oauth.custom_login_url, json={"user": "alice", "password": "nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "bad_credentials"}
    response = httpx.get(oauth.me_url, headers={"X-Session-Token": data["sessionToken"]})
    assert response.status_code == 200
    assert response.json()["sub"] == "alice"
    assert httpx.get(oauth.me_url, headers={"X-Session-Token": "nope"}).status_code == 401
    oauth.expire_tokens()
    assert httpx.get(oauth.me_url, headers={"X-Session-Token": data["sessionToken"]}).status_code == 401
    assert oauth.stats()["token_calls"]["custom"] == 3


def test_fault_injection(oauth: OAuthServer) -> None:
    oauth.configure(fail_next={"status": 500, "body": "<html><h1>Oops</h1></html>", "content_type": "text/html"})
    headers = basic(oauth.CONFIDENTIAL_ID, oauth.CONFIDENTIAL_SECRET)
    data = {"grant_type": "client_credentials"}
    failed = httpx.post(oauth.token_url, data=data, headers=headers)
    assert failed.status_code == 500
    assert failed.headers["content-type"].startswith("text/html")
    assert failed.text == "<html><h1>Oops</h1></html>"
    assert httpx.post(oauth.token_url, data=data, headers=headers).status_code == 200

    oauth.configure(fail_next={"status": 503, "body": "busy", "content_type": "text/plain", "count": 2})
    statuses = [httpx.post(oauth.token_url, data=data, headers=headers).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]

    oauth.configure(delay_next=0.5)
    started = time.monotonic()
    assert httpx.post(oauth.token_url, data=data, headers=headers).status_code == 200
    assert time.monotonic() - started >= 0.5  # a lower bound only: a loaded machine can only make it longer
    assert oauth.configure()["delay_next"] == 0.0  # the delay was used up by that one call
    assert httpx.post(oauth.token_url, data=data, headers=headers).status_code == 200
    assert oauth.stats()["token_calls"]["client_credentials"] == 7  # failed calls count too


def test_stats_count_per_grant_type(oauth: OAuthServer) -> None:
    token = code_token(oauth)
    refresh(oauth, token["refresh_token"])
    refresh(oauth, token["refresh_token"])  # refused, still a call
    headers = basic(oauth.CONFIDENTIAL_ID, oauth.CONFIDENTIAL_SECRET)
    httpx.post(oauth.token_url, data={"grant_type": "client_credentials"}, headers=headers)
    httpx.post(
        oauth.token_url, data={"grant_type": "password", "username": "alice", "password": "wonderland"}, headers=headers
    )
    httpx.get(oauth.custom_login_url, params={"user": "alice", "password": "wonderland"})
    stats = oauth.stats()
    assert stats == {
        "token_calls": {
            "authorization_code": 1,
            "refresh_token": 2,
            "client_credentials": 1,
            "password": 1,
            "custom": 1,
            "urn:ietf:params:oauth:grant-type:jwt-bearer": 0,
        },
        "revocations": 0,
        "registrations": 0,
        "cimd_fetches": 0,
        "revoked_tokens": 1,
        "active_access_tokens": 4,
        "verified_jwts": 0,
        "distinct_jwts": 0,
    }
    oauth.reset()
    assert oauth.stats() == {
        "token_calls": dict.fromkeys(stats["token_calls"], 0),
        "revocations": 0,
        "registrations": 0,
        "cimd_fetches": 0,
        "revoked_tokens": 0,
        "active_access_tokens": 0,
        "verified_jwts": 0,
        "distinct_jwts": 0,
    }
    assert me(oauth, token["access_token"]).status_code == 401


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_echo(oauth: OAuthServer, method: str) -> None:
    response = httpx.request(
        method, f"{oauth.echo_url}/a/b", params=[("q", "1"), ("q", "2")], headers={"X-Custom": "yes"}, content=b"hello"
    )
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["method"] == method
    assert echoed["path"] == "/api/echo/a/b"
    assert echoed["query"] == {"q": ["1", "2"]}
    assert echoed["query_string"] == "q=1&q=2"
    assert echoed["headers"]["x-custom"] == "yes"
    assert echoed["body"] == "hello"
    assert httpx.get(oauth.echo_url).json()["path"] == "/api/echo"


def test_metadata(oauth: OAuthServer) -> None:
    metadata = httpx.get(f"{oauth.base_url}/.well-known/oauth-authorization-server").json()
    assert metadata["token_endpoint"] == oauth.token_url
    assert metadata["revocation_endpoint"] == oauth.revoke_url
