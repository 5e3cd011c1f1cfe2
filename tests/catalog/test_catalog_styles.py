"""One catalog entry per auth style, end to end against loopback stand-ins (both databases).

Each case takes a real entry as a user would (``get_entry`` + ``integration_from``: their own client
ID, secret and scopes), keeps everything the entry says about the provider (client authentication,
token placement, token response, assertion claims, parameters, signing), points only its URLs at a
stand-in, creates the integration through the API, connects an account and shows the stand-in
accepts what AuthBridge sends. The stand-ins are the ones the other end-to-end tests use: the test
OAuth server process (``tests/servers/oauth_server.py``: OAuth 2.0 grants, RFC 7523 assertions,
joserfc-verified JWTs), the Authlib OAuth 1.0a provider (``tests/servers/oauth1_server.py``) and the
upstream that recomputes SigV4 signatures with botocore (``tests/proxy/signing_upstream.py``).

A change of the spec schema or of a plugin that breaks an entry fails here, and
:func:`test_every_auth_style_in_the_catalog_is_exercised_here` fails when an entry brings a style
(an auth type, an OAuth 2.0 grant or client authentication) that no case below exercises.
"""

from __future__ import annotations

import base64
import collections.abc
import typing
import uuid
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authbridge.catalog import CatalogEntry, entries, get_entry, integration_from
from authbridge.spec import OAuth2Auth, spec_to_dict
from tests.api.test_connections_e2e import (
    PUBLIC_URL,
    add_integration,
    auto_approve,
    callback,
    connect,
    database_dump,
    query_of,
    run_test,
    show,
    token_of,
)
from tests.api.test_jwt_e2e import SERVICE_ACCOUNT, key_file, pem, register
from tests.api.test_oauth1_e2e import browser
from tests.conftest import ClientFactory, create_api_key
from tests.proxy.signing_upstream import SigningState, make_signing_app
from tests.proxy.upstream import free_port, serve
from tests.servers.fixtures import OAuthServer
from tests.servers.oauth1_server import CONSUMER_KEY, CONSUMER_SECRET, OAuth1Server, run_oauth1_server

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

Json = dict[str, typing.Any]
F = typing.TypeVar("F", bound=collections.abc.Callable[..., None])
AWS_KEY_ID, AWS_SECRET = "AKIDCATALOG0001", "catalog/SECRET+key=Zq81"


# -- the styles and which case exercises each ------------------------------------------------------


def style_of(entry: CatalogEntry) -> str:
    """The entry's auth style as the tests tell them apart: the plugin's style, for OAuth 2.0 with the client auth.

    ``oauth2 (authorization_code, client_auth: header)``, ``jwt_bearer``, ``oauth1 (three_legged, HMAC-SHA1)``...
    """
    auth = entry.spec.auth
    if isinstance(auth, OAuth2Auth):
        return f"oauth2 ({auth.grant_type}, client_auth: {auth.client_auth})"
    return entry.auth_style


#: style → the entry whose case exercises it; filled by :func:`exercises` as this module is read.
EXERCISED: dict[str, str] = {}


def exercises(key: str) -> collections.abc.Callable[[F], F]:
    """Mark a case as the end-to-end test of entry ``key``'s style; the case gets the entry as ``entry``."""
    entry = get_entry(key)
    style = style_of(entry)
    assert style not in EXERCISED, f"{style} is exercised by {EXERCISED[style]} already"
    EXERCISED[style] = key
    mark: collections.abc.Callable[[F], F] = pytest.mark.parametrize("entry", [entry], ids=[key])
    return mark


def test_every_auth_style_in_the_catalog_is_exercised_here() -> None:
    """A new style (auth type, OAuth 2.0 grant or client authentication) cannot ship without a case here."""
    in_catalog = {style_of(e) for e in entries()}
    missing = sorted(in_catalog - EXERCISED.keys())
    assert missing == [], f"auth styles of catalog entries with no end-to-end case in this file: {missing}"
    stale = sorted(EXERCISED.keys() - in_catalog)
    assert stale == [], f"cases for styles no entry uses: {stale}"
    assert len(EXERCISED) >= 10  # the styles of the catalog today


def on_stand_in(
    entry: CatalogEntry, base_url: str, urls: collections.abc.Mapping[str, str], *, test: str | None, **user: typing.Any
) -> Json:
    """The user's integration from ``entry`` with its URLs (``urls``: auth field → URL) and base URL on a stand-in.

    Everything else stays as the entry says. ``test`` replaces the path of the entry's test request
    (None: the entry's own). No URL of the real provider may be left.
    """
    spec = spec_to_dict(integration_from(entry, **user))
    auth = spec["auth"]
    for field, url in urls.items():
        if field in auth:
            auth[field] = url
    left = [f"auth.{k}" for k, v in auth.items() if isinstance(v, str) and v.startswith("https://")]
    assert left == [], f"{entry.key}: URLs not pointed at the stand-in: {left}"
    if "client_secret" in auth:
        auth["client_secret"] = user["client_secret"]  # spec_to_dict masks it
    spec["request"] = {**spec.get("request", {}), "base_url": base_url}
    if test is not None:
        spec["test"] = {**spec["test"], "path": test}
    return spec


def oauth_urls(oauth: OAuthServer) -> dict[str, str]:
    return {"authorization_url": oauth.authorize_url, "token_url": oauth.token_url, "revoke_url": oauth.revoke_url}


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    """A started AuthBridge on a fresh database (both backends) that may call loopback stand-ins over http."""
    return make_client({**app_env, "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true", "AUTHBRIDGE_PUBLIC_URL": PUBLIC_URL})


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(client)}"}


# -- OAuth 2.0 ----------------------------------------------------------------------------------------


@exercises("github")
def test_authorization_code_secret_in_the_body(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, entry: CatalogEntry
) -> None:
    """GitHub's entry (client secret in the body, JSON answer asked for by Accept, no refresh token)."""
    user = {"client_id": oauth.CONFIDENTIAL_ID, "client_secret": oauth.CONFIDENTIAL_SECRET, "scopes": ["read", "write"]}
    add_integration(client, headers, on_stand_in(entry, oauth.base_url, oauth_urls(oauth), test="/api/me", **user))
    created = connect(client, headers, entry.key)
    query = query_of(created["authorize_url"])
    assert query["scope"] == "read write" and query["client_id"] == oauth.CONFIDENTIAL_ID  # space-delimited
    page = callback(client, auto_approve(oauth, created["authorize_url"]))
    assert page.status_code == 200, page.text
    assert show(client, headers, created["id"])["status"] == "active"
    token = token_of(client, headers, created["id"])
    assert httpx.get(oauth.me_url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert run_test(client, headers, created["id"])["ok"] is True
    assert oauth.CONFIDENTIAL_SECRET not in database_dump(client)


@exercises("zoom")
def test_authorization_code_secret_in_the_basic_header_and_revoked_on_delete(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, entry: CatalogEntry
) -> None:
    """Zoom's entry (client_secret_basic, a revoke URL): the code and refresh grants verify; delete revokes both."""
    user = {"client_id": oauth.CONFIDENTIAL_ID, "client_secret": oauth.CONFIDENTIAL_SECRET, "scopes": ["read"]}
    add_integration(client, headers, on_stand_in(entry, oauth.base_url, oauth_urls(oauth), test="/api/me", **user))
    created = connect(client, headers, entry.key)
    assert callback(client, auto_approve(oauth, created["authorize_url"])).status_code == 200
    assert run_test(client, headers, created["id"])["ok"] is True
    refreshed = client.post(f"/connections/{created['id']}/refresh", headers=headers)
    assert refreshed.status_code == 200, refreshed.text
    proxied = client.get(f"/proxy/{created['id']}/api/me", headers=headers)
    assert proxied.status_code == 200 and proxied.json()["client_id"] == oauth.CONFIDENTIAL_ID
    deleted = client.delete(f"/connections/{created['id']}", headers=headers)
    assert deleted.status_code == 200 and deleted.json()["revoked"] is True, deleted.text
    stats = oauth.stats()
    assert stats["token_calls"]["authorization_code"] == 1 and stats["token_calls"]["refresh_token"] == 1
    assert stats["revocations"] == 2


@exercises("microsoftgraphapp")
def test_client_credentials_secret_in_the_body(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, entry: CatalogEntry
) -> None:
    """Microsoft Graph app-only (tenant parameter, secret in the body): the token is fetched when connecting."""
    user = {"client_id": oauth.CONFIDENTIAL_ID, "client_secret": oauth.CONFIDENTIAL_SECRET, "scopes": ["read"]}
    add_integration(client, headers, on_stand_in(entry, oauth.base_url, oauth_urls(oauth), test="/api/me", **user))
    bad = client.post(
        "/connections",
        json={"integration": entry.key, "name": "DEV", "parameters": {"tenant": "-bad"}},
        headers=headers,
    )
    assert bad.status_code == 422 and bad.json()["error"]["errors"][0]["path"] == "parameters.tenant"
    created = connect(client, headers, entry.key, parameters={"tenant": "contoso.onmicrosoft.com"})
    assert created["status"] == "active"
    assert oauth.stats()["token_calls"]["client_credentials"] == 1
    assert run_test(client, headers, created["id"])["ok"] is True


@exercises("paypal")
def test_client_credentials_secret_in_the_basic_header(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, entry: CatalogEntry
) -> None:
    """PayPal's entry (client_secret_basic, an environment parameter): a wrong secret is refused when connecting."""
    user = {"client_id": oauth.CONFIDENTIAL_ID, "client_secret": oauth.CONFIDENTIAL_SECRET}
    spec = on_stand_in(entry, oauth.base_url, oauth_urls(oauth), test="/api/me", **user)
    add_integration(client, headers, spec)
    created = connect(client, headers, entry.key, parameters={"apiHost": "api-m.sandbox.paypal.com"})
    assert created["status"] == "active"
    assert run_test(client, headers, created["id"])["ok"] is True
    wrong = {**spec, "key": "paypalwrong", "auth": {**spec["auth"], "client_secret": "not-the-secret"}}
    add_integration(client, headers, wrong)
    refused = client.post("/connections", json={"integration": "paypalwrong", "name": "DEV"}, headers=headers)
    assert refused.status_code == 422 and "invalid_client" in refused.text
    assert oauth.stats()["token_calls"]["client_credentials"] == 2


# -- tokens the account brings --------------------------------------------------------------------------


@exercises("stripe")
def test_api_token(client: TestClient, headers: dict[str, str], oauth: OAuthServer, entry: CatalogEntry) -> None:
    """Stripe's entry (a Bearer API key): the key the test server accepts makes the test pass, another fails it."""
    add_integration(client, headers, on_stand_in(entry, oauth.base_url, {}, test="/api/me"))
    issued = httpx.post(
        oauth.token_url,
        data={
            "grant_type": "client_credentials",
            "scope": "read",
            "client_id": oauth.CONFIDENTIAL_ID,
            "client_secret": oauth.CONFIDENTIAL_SECRET,
        },
    ).json()["access_token"]
    good = connect(client, headers, entry.key, credentials={"token": issued})
    assert run_test(client, headers, good["id"])["ok"] is True
    wrong = connect(client, headers, entry.key, name="QA", credentials={"token": "sk_test_not_issued"})
    report = run_test(client, headers, wrong["id"])
    assert report["ok"] is False and report["status"] == 401


@exercises("twilio")
def test_basic(client: TestClient, headers: dict[str, str], oauth: OAuthServer, entry: CatalogEntry) -> None:
    """Twilio's entry (HTTP Basic): the proxy sends the account SID and token as the Basic header."""
    add_integration(client, headers, on_stand_in(entry, oauth.base_url, {}, test="/api/echo/Accounts.json"))
    created = connect(client, headers, entry.key, credentials={"username": "AC123", "password": "tw-secret-1"})
    assert run_test(client, headers, created["id"])["ok"] is True
    echoed = client.get(f"/proxy/{created['id']}/api/echo/Accounts.json", headers=headers)
    assert echoed.status_code == 200, echoed.text
    sent = echoed.json()["headers"]["authorization"]
    assert sent == "Basic " + base64.b64encode(b"AC123:tw-secret-1").decode()
    assert "tw-secret-1" not in database_dump(client)


# -- JWTs AuthBridge signs --------------------------------------------------------------------------------


@exercises("googlecloudserviceaccount")
def test_jwt_bearer_grant(client: TestClient, headers: dict[str, str], oauth: OAuthServer, entry: CatalogEntry) -> None:
    """Google's service account entry: Authlib's RFC 7523 grant verifies the assertion signed with the key file's
    key (its client_email the issuer, the scopes as a claim); each refresh signs a new one (each jti once)."""
    private = rsa.generate_private_key(65537, 2048)
    register(oauth, SERVICE_ACCOUNT, private)
    spec = on_stand_in(entry, oauth.base_url, oauth_urls(oauth), test="/api/me", scopes=["read"])
    assert spec["auth"]["scope_claim"] is True  # Google: the scopes ride in the assertion
    add_integration(client, headers, spec)
    created = connect(client, headers, entry.key, parameters={"service_account_key": key_file(private, oauth)})
    assert created["status"] == "active"
    assert run_test(client, headers, created["id"])["ok"] is True
    assert client.post(f"/connections/{created['id']}/refresh", headers=headers).status_code == 200
    assert oauth.stats()["token_calls"]["urn:ietf:params:oauth:grant-type:jwt-bearer"] == 2
    proxied = client.get(f"/proxy/{created['id']}/api/me", headers=headers)
    assert proxied.status_code == 200 and proxied.json()["client_id"] == SERVICE_ACCOUNT
    assert proxied.json()["scope"] == "read"  # the user's scopes (integration_from), granted
    assert pem(private).splitlines()[1] not in database_dump(client)


@exercises("appstoreconnect")
def test_self_signed_jwt(client: TestClient, headers: dict[str, str], oauth: OAuthServer, entry: CatalogEntry) -> None:
    """App Store Connect's entry (an ES256 JWT, kid the key ID, iss the issuer): joserfc verifies it upstream."""
    private = ec.generate_private_key(ec.SECP256R1())
    key_id, issuer = "CATALOG001", str(uuid.uuid4())
    register(oauth, key_id, private)
    add_integration(client, headers, on_stand_in(entry, oauth.base_url, {}, test="/api/jwt"))
    parameters = {"issuer_id": issuer, "key_id": key_id, "private_key": pem(private)}
    created = connect(client, headers, entry.key, parameters=parameters)
    assert run_test(client, headers, created["id"])["ok"] is True
    verified = client.get(f"/proxy/{created['id']}/api/jwt", headers=headers)
    assert verified.status_code == 200, verified.text
    assert verified.json()["header"] == {"typ": "JWT", "kid": key_id, "alg": "ES256"}
    claims = verified.json()["claims"]
    assert claims["iss"] == issuer and claims["aud"] == "appstoreconnect-v1" and claims["exp"] - claims["iat"] == 1200
    other = ec.generate_private_key(ec.SECP256R1())  # a key Apple does not know: the stand-in refuses the JWT
    wrong = connect(client, headers, entry.key, name="QA", parameters={**parameters, "private_key": pem(other)})
    assert run_test(client, headers, wrong["id"])["status"] == 401


# -- OAuth 1.0a ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oauth1_server() -> collections.abc.Iterator[OAuth1Server]:
    with run_oauth1_server() as server:
        yield server


@pytest.fixture
def oauth1(oauth1_server: OAuth1Server) -> OAuth1Server:
    oauth1_server.state.reset()
    return oauth1_server


@exercises("trellooauth")
def test_oauth1_three_legged(
    client: TestClient, headers: dict[str, str], oauth1: OAuth1Server, entry: CatalogEntry
) -> None:
    """Trello's entry (three legs, HMAC-SHA1, its authorize parameters): Authlib's provider verifies every signature."""
    urls = {
        "request_token_url": oauth1.request_token_url,
        "authorization_url": oauth1.authorize_url,
        "access_token_url": oauth1.access_token_url,
    }
    user = {"client_id": CONSUMER_KEY, "client_secret": CONSUMER_SECRET}
    add_integration(client, headers, on_stand_in(entry, oauth1.base_url, urls, test="/api/me", **user))
    created = connect(client, headers, entry.key)
    query = dict(parse_qsl(urlsplit(created["authorize_url"]).query))
    assert query["name"] == "AuthBridge" and query["scope"] == "read,write" and query["expiration"] == "never"
    assert callback(client, browser(created["authorize_url"])).status_code == 200
    assert show(client, headers, created["id"])["status"] == "active"
    assert run_test(client, headers, created["id"])["ok"] is True
    echoed = client.get(f"/proxy/{created['id']}/api/echo", params={"filter": "open cards"}, headers=headers)
    assert echoed.status_code == 200, echoed.text
    assert echoed.json()["user"] == "alice" and echoed.json()["signature_method"] == "HMAC-SHA1"
    assert oauth1.state.stats["verified"] == 2
    assert CONSUMER_SECRET not in database_dump(client)


# -- signed requests --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_server() -> collections.abc.Iterator[tuple[str, SigningState]]:
    state = SigningState()
    with serve(make_signing_app(state), free_port()) as url:
        yield url, state


@pytest.fixture
def signing(signing_server: tuple[str, SigningState]) -> tuple[str, SigningState]:
    url, state = signing_server
    state.reset()
    state.aws_keys[AWS_KEY_ID] = (AWS_SECRET, None)
    return url, state


@exercises("aws")
def test_aws_sigv4(
    client: TestClient, headers: dict[str, str], signing: tuple[str, SigningState], entry: CatalogEntry
) -> None:
    """AWS's entry, its own test request (STS GetCallerIdentity): botocore recomputes the signature upstream."""
    url, state = signing
    add_integration(client, headers, on_stand_in(entry, url, {}, test=None))
    keys = {"access_key_id": AWS_KEY_ID, "secret_access_key": AWS_SECRET}
    created = connect(client, headers, entry.key, parameters={"region": "eu-west-1"}, credentials=keys)
    assert run_test(client, headers, created["id"])["ok"] is True
    (tested,) = state.received
    assert tested["problem"] is None and tested["query"] == "Action=GetCallerIdentity&Version=2011-06-15"
    assert f"Credential={AWS_KEY_ID}/" in tested["headers"]["authorization"]
    assert "/eu-west-1/sts/aws4_request" in tested["headers"]["authorization"]
    posted = client.post(f"/proxy/{created['id']}/", data={"Action": "GetCallerIdentity"}, headers=headers)
    assert posted.status_code == 200 and state.received[-1]["problem"] is None, posted.text
    wrong = connect(
        client, headers, entry.key, name="QA", credentials={**keys, "secret_access_key": "not-the-SECRET-key"}
    )
    report = run_test(client, headers, wrong["id"])
    assert report["ok"] is False and report["status"] == 403
    assert AWS_SECRET not in database_dump(client)
