"""A real OAuth 2.0 authorization server for tests, built from Authlib's Flask integration.

Run it as its own process from the repository root::

    python -m tests.servers.oauth_server --port 0 [--token-ttl 3600] [--issuer URL] [--auto-approve]

It prints ``READY http://127.0.0.1:<port>`` once listening (``--port 0`` picks a free port). Everything lives
in memory. Besides the OAuth endpoints it has a protected resource (``/api/me``), an echo endpoint
(``/api/echo/...``), an Airkit-style custom token endpoint (``/custom/login``) and unauthenticated test
controls under ``/_admin/`` (stats, configuration, fault injection, reset, expire). ``/oauth/introspect``
(RFC 7662) tells whether an access or refresh token is still active.

RFC 7523: the JWT bearer grant (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``) and
``private_key_jwt`` client authentication verify assertions against public keys a test registers
with ``POST /_admin/jwt_keys`` (``{"id": client id or kid, "jwk": {...}}``); registering a key for an
unknown id creates a client of that id (the issuer of a service account). ``/api/jwt`` verifies a
self-signed JWT sent as a bearer token (by its ``kid``) and answers its header and claims.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar
from urllib.parse import unquote_plus, urlsplit

import flask
import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidGrantError, grants
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion, JWTBearerGrant
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, Response, jsonify, render_template_string
from flask.typing import ResponseReturnValue
from joserfc import jws
from joserfc import jwt as joserfc_jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key, OctKey
from werkzeug.serving import make_server

CONFIDENTIAL_ID = "confidential"
CONFIDENTIAL_SECRET = "s3cret:with+chars"  # ':' and '+' must be form-encoded in HTTP Basic
PUBLIC_ID = "public"
USERNAME = "alice"
PASSWORD = "wonderland"
SCOPES = "read write"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
KEY_CLIENT_ID = "keyclient"
TOKEN_KINDS = ("authorization_code", "refresh_token", "client_credentials", "password", "custom", JWT_BEARER)
ALL_GRANTS = frozenset({"authorization_code", "refresh_token", "client_credentials", "password"})
#: Any port on the loopback host names (RFC 8252 §7.3).
REDIRECT_URI_RE = re.compile(r"http://(127\.0\.0\.1|localhost)(:\d{1,5})?/oauth/callback")
#: Every client authentication method, accepted by every grant and by the revocation endpoint.
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"]
#: What /api/jwt and the RFC 7523 pieces accept (joserfc's default registry knows only HS256, RS256, ES256).
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"]
JWT_ALGORITHMS += ["HS256", "HS384", "HS512"]
CODE_TTL = 600.0


@dataclass
class Client:
    client_id: str
    client_secret: str | None
    grant_types: frozenset[str]
    auth_methods: frozenset[str]
    scope: str = SCOPES
    #: The exact redirect URIs allowed (a client ID metadata document's); None: any loopback callback.
    redirect_uris: tuple[str, ...] | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # redirect_uri is required in every authorization request

    def get_allowed_scope(self, scope: str | None) -> str | None:
        if not scope:
            return self.scope
        allowed = set(self.scope.split())
        granted = [s for s in scope_to_list(scope) if s in allowed]
        return str(list_to_scope(granted)) if granted else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        if self.redirect_uris is not None:
            return redirect_uri in self.redirect_uris
        return REDIRECT_URI_RE.fullmatch(redirect_uri) is not None

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret is None:
            return False
        return secrets.compare_digest(self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


CLIENTS = {
    CONFIDENTIAL_ID: Client(
        CONFIDENTIAL_ID,
        CONFIDENTIAL_SECRET,
        ALL_GRANTS,
        frozenset({"client_secret_basic", "client_secret_post", "client_secret_jwt"}),
    ),
    PUBLIC_ID: Client(PUBLIC_ID, None, frozenset({"authorization_code", "refresh_token"}), frozenset({"none"})),
    KEY_CLIENT_ID: Client(KEY_CLIENT_ID, None, ALL_GRANTS | {JWT_BEARER}, frozenset({"private_key_jwt"})),
}


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token:
    access_token: str
    refresh_token: str | None
    client_id: str
    user: str | None
    scope: str
    expires_at: float
    access_revoked: bool = False
    refresh_revoked: bool = False
    #: The RFC 8707 resource the token request named (its audience).
    resource: str | None = None

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.access_revoked


@dataclass
class Config:
    token_ttl: int = 3600
    auto_approve: bool = False
    issuer: str | None = None
    #: Dynamic registration (RFC 7591): ``open``, ``refuse`` (400 invalid_client_metadata), or off (``off``: 404).
    registration: str = "open"
    #: Seconds until a registered client's secret expires (0: never).
    registration_secret_ttl: int = 0
    #: The ``resource`` the protected resource metadata names (None: the real /mcp URL); a liar's for tests.
    prm_resource: str | None = None
    #: ``code_challenge_methods_supported`` of the metadata.
    pkce_methods: list[str] = field(default_factory=lambda: ["S256", "plain"])
    #: False: the authorization code grant issues no refresh token (a provider that wants prompt=consent).
    refresh_tokens: bool = True
    #: Client ID metadata documents: advertised in the metadata, and an https client id is fetched as one.
    client_id_metadata_documents: bool = False
    #: Test flag: fetch client ID metadata documents from http loopback URLs too (AuthBridge under test).
    cimd_loopback_http: bool = False
    #: The WWW-Authenticate of /mcp/need/<scope>'s 403 instead of the true one (None: the true one).
    step_up_challenge: str | None = None


@dataclass
class Fault:
    status: int = 500
    body: str = "<html><body><h1>500 Internal Server Error</h1></body></html>"
    content_type: str = "text/html"
    count: int = 1


@dataclass
class RevokeFault(Fault):
    """A fault answered by the revocation endpoint for one kind of token only."""

    kind: str = "refresh_token"  # refresh_token | access_token


@dataclass
class State:
    """All the server's memory. ``lock`` guards it; ``token_lock`` serialises token issuance."""

    defaults: Config
    lock: threading.RLock = field(default_factory=threading.RLock)
    token_lock: threading.Lock = field(default_factory=threading.Lock)
    config: Config = field(default_factory=Config)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    refresh_index: dict[str, Token] = field(default_factory=dict)
    sessions: dict[str, float] = field(default_factory=dict)
    token_calls: dict[str, int] = field(default_factory=dict)
    revocations: int = 0
    registrations: int = 0
    registered: dict[str, Client] = field(default_factory=dict)
    #: Client ID metadata documents fetched (each fetch counted), the clients they made.
    cimd_fetches: int = 0
    cimd_clients: dict[str, Client] = field(default_factory=dict)
    #: Public keys (JWKs) registered by tests, by client id or kid; clients created for new ids.
    jwt_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    key_clients: dict[str, Client] = field(default_factory=dict)
    seen_jtis: set[str] = field(default_factory=set)
    verified_jwts: list[str] = field(default_factory=list)
    fail_next: Fault | None = None
    revoke_fault: RevokeFault | None = None
    delay_next: float = 0.0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.config = replace(self.defaults)
            self.codes.clear()
            self.tokens.clear()
            self.refresh_index.clear()
            self.sessions.clear()
            self.token_calls = dict.fromkeys(TOKEN_KINDS, 0)
            self.revocations = 0
            self.registrations = 0
            self.registered.clear()
            self.cimd_fetches = 0
            self.cimd_clients.clear()
            self.jwt_keys.clear()
            self.key_clients.clear()
            self.seen_jtis.clear()
            self.verified_jwts.clear()
            self.fail_next = None
            self.revoke_fault = None
            self.delay_next = 0.0

    def query_client(self, client_id: str) -> Client | None:
        with self.lock:
            registered = self.registered.get(client_id) or self.cimd_clients.get(client_id)
            found = registered or CLIENTS.get(client_id) or self.key_clients.get(client_id)
            cimd = self.config.client_id_metadata_documents
        if found is None and cimd and client_id.startswith(("https://", "http://")):
            return self.metadata_document_client(client_id)
        return found

    def metadata_document_client(self, url: str) -> Client | None:
        """draft-ietf-oauth-client-id-metadata-document: fetch the document at the client id, check it, cache it.

        Only https (http to a loopback host with ``cimd_loopback_http``), no redirects, 64 KiB at most;
        the document's ``client_id`` must be its own URL; its ``redirect_uris`` are the only ones allowed.
        """
        parts = urlsplit(url)
        loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
        if parts.scheme != "https" and not (loopback and self.config.cimd_loopback_http):
            return None
        with self.lock:
            self.cimd_fetches += 1
        try:
            answer = httpx.get(url, timeout=5.0, follow_redirects=False, headers={"Accept": "application/json"})
            document = answer.json() if answer.status_code == 200 and len(answer.content) <= 65536 else None
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(document, dict) or document.get("client_id") != url:
            return None
        redirect_uris = document.get("redirect_uris")
        if not isinstance(redirect_uris, list) or not all(isinstance(u, str) for u in redirect_uris):
            return None
        if document.get("token_endpoint_auth_method", "none") != "none":
            return None
        grants_ = document.get("grant_types", ["authorization_code"])
        client = Client(url, None, frozenset(grants_), frozenset({"none"}), redirect_uris=tuple(redirect_uris))
        with self.lock:
            self.cimd_clients[url] = client
        return client

    def register_key(self, key_id: str, jwk: dict[str, Any]) -> None:
        with self.lock:
            self.jwt_keys[key_id] = jwk
            if key_id not in CLIENTS:
                grants_ = frozenset({JWT_BEARER, "client_credentials"})
                self.key_clients[key_id] = Client(key_id, None, grants_, frozenset({"private_key_jwt", "none"}))

    def public_key(self, key_id: str) -> Key:
        with self.lock:
            jwk = self.jwt_keys.get(key_id)
        if jwk is None:
            raise InvalidGrantError(description="no key is registered for this issuer")
        return JWKRegistry.import_key(jwk)

    def first_use(self, jti: object) -> bool:
        """Whether an assertion's jti is new (each assertion is used once: a re-signed one has a new jti)."""
        if not isinstance(jti, str) or not jti:
            return False
        with self.lock:
            if jti in self.seen_jtis:
                return False
            self.seen_jtis.add(jti)
            return True

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        record = Token(
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            client_id=request.client.client_id,
            user=request.user,
            scope=token.get("scope", ""),
            expires_at=time.time() + int(token.get("expires_in", 0)),
            resource=flask.request.values.get("resource"),
        )
        with self.lock:
            self.tokens[record.access_token] = record
            if record.refresh_token:
                self.refresh_index[record.refresh_token] = record

    def take_fault(self) -> tuple[float, Fault | None]:
        with self.lock:
            delay, self.delay_next = self.delay_next, 0.0
            fault = self.fail_next
            if fault is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.fail_next = None
            return delay, fault

    def take_revoke_fault(self, token: str) -> RevokeFault | None:
        """The revocation fault to answer for this token (by what the token is, not the client's hint)."""
        with self.lock:
            kind = "refresh_token" if token in self.refresh_index else "access_token" if token in self.tokens else None
            fault = self.revoke_fault
            if fault is None or fault.kind != kind:
                return None
            fault.count -= 1
            if fault.count <= 0:
                self.revoke_fault = None
            return fault

    def expire_all(self) -> int:
        with self.lock:
            for token in self.tokens.values():
                token.expires_at = 0.0
            for session in self.sessions:
                self.sessions[session] = 0.0
            return len(self.tokens) + len(self.sessions)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            tokens = list(self.tokens.values())
            return {
                "verified_jwts": len(self.verified_jwts),
                "distinct_jwts": len(set(self.verified_jwts)),
                "token_calls": dict(self.token_calls),
                "revocations": self.revocations,
                "registrations": self.registrations,
                "cimd_fetches": self.cimd_fetches,
                "revoked_tokens": sum(t.access_revoked + (t.refresh_revoked and bool(t.refresh_token)) for t in tokens),
                "active_access_tokens": sum(not t.is_expired() and not t.access_revoked for t in tokens),
            }


def _state() -> State:
    state: State = flask.current_app.extensions["oauth_state"]
    return state


class _Request(FlaskOAuth2Request):  # type: ignore[misc]
    """Token parameters may come from the query string too (Airkit's "Access Token Verb": GET)."""

    @property
    def form(self) -> Any:
        return flask.request.values


class _AuthServer(AuthorizationServer):  # type: ignore[misc]
    def create_oauth2_request(self, request: object) -> _Request:
        return _Request(flask.request)


class _ClientAssertion(JWTBearerClientAssertion):  # type: ignore[misc]
    """Both JWT client authentications read the same fields: each answers only for clients registered for it."""

    def __call__(self, query_client: Callable[[str], Client | None], request: Any) -> Client | None:
        assertion = request.form.get("client_assertion")
        if assertion:
            _headers, claims = self.extract_assertion(assertion)
            subject = claims.get("sub")
            client = query_client(subject) if isinstance(subject, str) else None
            if client is not None and self.CLIENT_AUTH_METHOD not in client.auth_methods:
                return None
        result: Client | None = super().__call__(query_client, request)
        return result


class _ClientSecretJWT(_ClientAssertion):
    """RFC 7523 §2.2 ``client_secret_jwt``: an HS256 assertion keyed by the client secret, for this endpoint, once."""

    CLIENT_AUTH_METHOD = "client_secret_jwt"

    def __init__(self) -> None:
        super().__init__(validate_jti=True)
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def get_audiences(self) -> list[str]:
        return [flask.request.base_url]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        with self.lock:
            if jti in self.seen:
                return False
            self.seen.add(jti)
            return True

    def resolve_client_public_key(self, client: Client) -> OctKey:
        return OctKey.import_key(client.client_secret or "")


class _PrivateKeyJWT(_ClientAssertion):
    """RFC 7523 §2.2 ``private_key_jwt``: an assertion signed with the client's private key (public key registered)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self) -> None:
        super().__init__(validate_jti=True)

    def get_audiences(self) -> list[str]:
        return [flask.request.base_url]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        return _state().first_use(jti)

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = joserfc_jwt.decode(assertion, resolve_key, algorithms=JWT_ALGORITHMS)
        except (JoseError, ValueError) as exc:
            raise InvalidClientError(description="Invalid client assertion.") from exc
        self.verify_claims(token.claims)
        return token.claims

    def resolve_client_public_key(self, client: Client) -> Key:
        return _state().public_key(client.client_id)


class JwtBearerGrant(JWTBearerGrant):  # type: ignore[misc]
    """RFC 7523 §2.1: the assertion's ``iss`` names the client, signed with its registered key; each jti once.
    A ``scope`` claim (Google's service accounts) is the token's scope when the request's ``scope`` is empty."""

    TOKEN_ENDPOINT_HTTP_METHODS: ClassVar[list[str]] = ["POST"]

    def resolve_issuer_client(self, issuer: str) -> Client | None:
        return _state().query_client(issuer)

    def resolve_client_public_key(self, client: Client) -> Key:
        return _state().public_key(client.client_id)

    def process_assertion_claims(self, assertion: str) -> Any:
        _headers, claims = self.extract_assertion(assertion)
        issuer = claims.get("iss")
        client = self.resolve_issuer_client(issuer) if isinstance(issuer, str) else None
        if client is None:
            raise InvalidGrantError(description="The client does not exist on this server.")
        try:
            token = joserfc_jwt.decode(assertion, self.resolve_client_public_key(client), algorithms=JWT_ALGORITHMS)
        except (JoseError, ValueError) as exc:
            raise InvalidGrantError(description="Invalid JWT assertion.") from exc
        self.verify_claims(token.claims)
        if "jti" in token.claims and not _state().first_use(token.claims["jti"]):
            raise InvalidGrantError(description="The assertion was used already (jti).")
        self.assertion_claims: dict[str, Any] = dict(token.claims)
        return token.claims

    def get_audiences(self) -> list[str]:
        return [flask.request.base_url]

    def authenticate_user(self, subject: str) -> str | None:
        return subject if subject == USERNAME else None

    def has_granted_permission(self, client: Client, user: str) -> bool:
        return True

    def generate_token(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        claimed = self.assertion_claims.get("scope")
        if not kwargs.get("scope") and isinstance(claimed, str):
            kwargs["scope"] = claimed  # Google style: the scopes asked for in the assertion's scope claim
        token: dict[str, Any] = super().generate_token(*args, **kwargs)
        token["instance_url"] = flask.request.host_url.rstrip("/")  # Salesforce style
        return token


def _client_secret_basic(query_client: Callable[[str], Client | None], request: Any) -> Client | None:
    """HTTP Basic with the id and secret form-encoded first (RFC 6749 §2.3.1): a raw '+' decodes as a space."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    raw_id, sep, raw_secret = decoded.partition(":")
    client = query_client(unquote_plus(raw_id)) if sep else None
    if client is not None and client.check_client_secret(unquote_plus(raw_secret)):
        return client
    return None


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = AUTH_METHODS
    TOKEN_ENDPOINT_HTTP_METHODS: ClassVar[list[str]] = ["GET", "POST"]

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        item = AuthCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            user=request.user,
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            expires_at=time.time() + CODE_TTL,
        )
        with _state().lock:
            _state().codes[code] = item

    def query_authorization_code(self, code: str, client: Client) -> AuthCode | None:
        item = _state().codes.get(code)
        if item is None or item.client_id != client.client_id or item.expires_at < time.time():
            return None
        return item

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        with _state().lock:
            _state().codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthCode) -> str:
        return authorization_code.user

    def generate_token(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        token: dict[str, Any] = super().generate_token(*args, **kwargs)
        token["instance_url"] = flask.request.host_url.rstrip("/")  # Salesforce style
        if not _state().config.refresh_tokens:
            token.pop("refresh_token", None)
        return token


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = AUTH_METHODS
    TOKEN_ENDPOINT_HTTP_METHODS: ClassVar[list[str]] = ["GET", "POST"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        token = _state().refresh_index.get(refresh_token)
        return None if token is None or token.refresh_revoked else token

    def authenticate_user(self, refresh_token: Token) -> str | None:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: Token) -> None:
        refresh_token.refresh_revoked = True


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = AUTH_METHODS
    TOKEN_ENDPOINT_HTTP_METHODS: ClassVar[list[str]] = ["GET", "POST"]


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = AUTH_METHODS
    TOKEN_ENDPOINT_HTTP_METHODS: ClassVar[list[str]] = ["GET", "POST"]

    def authenticate_user(self, username: str, password: str) -> str:
        if username == USERNAME and secrets.compare_digest(password.encode(), PASSWORD.encode()):
            return USERNAME
        raise InvalidGrantError("Invalid resource owner credentials.")  # RFC 6749 §5.2


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        state = _state()
        return state.tokens.get(token_string) or state.refresh_index.get(token_string)

    def revoke_token(self, token: Token, request: Any) -> None:
        with _state().lock:
            token.access_revoked = True
            if request.form["token"] == token.refresh_token:  # a refresh token takes its access token along
                token.refresh_revoked = True


@dataclass
class _Introspected:
    """A token seen as one kind: a refresh token's life is its own, not its access token's."""

    kind: str
    token: Token

    def is_expired(self) -> bool:
        return self.kind == "access_token" and self.token.is_expired()

    def is_revoked(self) -> bool:
        return self.token.refresh_revoked if self.kind == "refresh_token" else self.token.access_revoked


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662: whether a token is active (tests use it to see what a revocation did)."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Introspected | None:
        state = _state()
        if token_string in state.tokens:
            return _Introspected("access_token", state.tokens[token_string])
        if token_string in state.refresh_index:
            return _Introspected("refresh_token", state.refresh_index[token_string])
        return None

    def check_permission(self, token: _Introspected, client: Client, request: Any) -> bool:
        # The token's own client, or the confidential client standing for resource servers (the MCP test server).
        return client.client_id in (token.token.client_id, CONFIDENTIAL_ID)

    def introspect_token(self, token: _Introspected) -> dict[str, Any]:
        return {
            "active": True,
            "token_type": token.kind,
            "client_id": token.token.client_id,
            "scope": token.token.scope,
            "exp": int(token.token.expires_at),
            **({"aud": token.token.resource} if token.token.resource else {}),
        }


class Validator(BearerTokenValidator):  # type: ignore[misc]
    def authenticate_token(self, token_string: str) -> Token | None:
        return _state().tokens.get(token_string)


CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test IdP: authorize {{ client_id }}</title></head>
<body>
<h1>Sign in to authorize {{ client_id }}</h1>
<p><strong>{{ client_id }}</strong> asks for: <span id="scope">{{ scope }}</span></p>
{% if error %}<p role="alert" id="error">{{ error }}</p>{% endif %}
<form method="post" action="/oauth/authorize">
{% for name, value in hidden %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}<p><label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username"></p>
<p><label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password"></p>
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny">Deny</button>
</form>
</body></html>
"""


class Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    """RFC 7591 open registration: any client metadata Authlib's claims accept gets a confidential client."""

    def authenticate_token(self, request: Any) -> bool:
        return True  # open registration: no initial access token

    def get_server_metadata(self) -> dict[str, Any]:
        return {
            "scopes_supported": SCOPES.split(),
            "response_types_supported": ["code"],
            "grant_types_supported": sorted(ALL_GRANTS),
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
        }

    def generate_client_info(self, request: Any) -> dict[str, Any]:
        info: dict[str, Any] = super().generate_client_info(request)
        ttl = _state().config.registration_secret_ttl
        if ttl:
            info["client_secret_expires_at"] = int(time.time()) + ttl
        return info

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any) -> Client:
        client = Client(
            client_id=client_info["client_id"],
            client_secret=client_info["client_secret"],
            grant_types=frozenset(client_metadata.get("grant_types", ["authorization_code"])),
            auth_methods=frozenset([client_metadata.get("token_endpoint_auth_method", "client_secret_basic")]),
            scope=client_metadata.get("scope") or SCOPES,
        )
        state = _state()
        with state.lock:
            state.registered[client.client_id] = client
            state.registrations += 1
        return client


def create_app(defaults: Config) -> Flask:
    app = Flask(__name__)
    app.config["OAUTH2_SCOPES_SUPPORTED"] = SCOPES.split()
    state = State(defaults)
    app.extensions["oauth_state"] = state
    server = _AuthServer(app, state.query_client, state.save_token)
    server.register_client_auth_method("client_secret_basic", _client_secret_basic)
    server.register_client_auth_method("client_secret_jwt", _ClientSecretJWT())
    server.register_client_auth_method("private_key_jwt", _PrivateKeyJWT())
    server.register_token_generator(
        "default", BearerTokenGenerator(lambda **_: generate_token(42), lambda **_: generate_token(48), _ttl)
    )
    server.register_grant(CodeGrant, [CodeChallenge(required=False)])
    server.register_grant(RefreshGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(PasswordGrant)
    server.register_grant(JwtBearerGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    server.register_endpoint(Registration)
    require_oauth = ResourceProtector()
    require_oauth.register_token_validator(Validator())

    def with_iss(response: Response) -> Response:
        issuer = state.config.issuer
        if issuer and response.status_code == 302 and response.headers.get("Location"):
            response.headers["Location"] = add_params_to_uri(response.headers["Location"], [("iss", issuer)])
        return response

    def token_call(kind: str, handler: Callable[[], ResponseReturnValue]) -> ResponseReturnValue:
        with state.lock:
            if kind in state.token_calls:
                state.token_calls[kind] += 1
        delay, fault = state.take_fault()
        if delay:
            time.sleep(delay)
        if fault is not None:
            return Response(fault.body, status=fault.status, content_type=fault.content_type)
        with state.token_lock:  # one issuance at a time: a refresh token is consumed atomically
            return handler()

    @app.route("/oauth/authorize", methods=["GET", "POST"])
    def authorize() -> ResponseReturnValue:
        try:
            grant = server.get_consent_grant(end_user=None)
        except OAuth2Error as error:
            return with_iss(server.handle_error_response(None, error))
        if flask.request.method == "GET" and state.config.auto_approve:
            return with_iss(server.create_authorization_response(grant=grant, grant_user=USERNAME))
        form = flask.request.form
        message = None
        if flask.request.method == "POST":
            if form.get("action") != "approve":
                return with_iss(server.create_authorization_response(grant=grant, grant_user=None))
            if form.get("username") == USERNAME and form.get("password") == PASSWORD:
                return with_iss(server.create_authorization_response(grant=grant, grant_user=USERNAME))
            message = "Invalid username or password."
        hidden = [
            (k, v) for k, v in flask.request.values.items(multi=True) if k not in ("username", "password", "action")
        ]
        page = render_template_string(
            CONSENT_PAGE, client_id=grant.client.client_id, scope=grant.request.scope, hidden=hidden, error=message
        )
        return page, 401 if message else 200

    @app.route("/oauth/token", methods=["GET", "POST"])
    def issue_token() -> ResponseReturnValue:
        grant_type = flask.request.values.get("grant_type", "")
        return token_call(grant_type, server.create_token_response)

    @app.route("/oauth/revoke", methods=["POST"])
    def revoke() -> ResponseReturnValue:
        with state.lock:
            state.revocations += 1
        fault = state.take_revoke_fault(flask.request.form.get("token", ""))
        if fault is not None:
            return Response(fault.body, status=fault.status, content_type=fault.content_type)
        response: Response = server.create_endpoint_response(Revocation.ENDPOINT_NAME)
        return response

    @app.route("/oauth/introspect", methods=["POST"])
    def introspect() -> ResponseReturnValue:
        response: Response = server.create_endpoint_response(Introspection.ENDPOINT_NAME)
        return response

    @app.route("/mcp", methods=["GET", "POST"])
    @app.route("/mcp/need/<needed>", methods=["GET", "POST"])
    def protected_mcp(needed: str | None = None) -> ResponseReturnValue:
        """A protected resource in the MCP authorization spec's shape: RFC 9728 metadata, RFC 8707 audience.

        ``/mcp/need/<scope>`` also needs that scope: without it, 403 ``insufficient_scope`` naming the
        token's scopes and that one (MCP step-up), or the configured ``step_up_challenge`` (a liar's).
        """
        base = flask.request.host_url.rstrip("/")
        challenge = f'Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp", scope="read"'
        header = flask.request.headers.get("Authorization", "")
        token = state.tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if token is None or token.is_expired() or token.access_revoked:
            return Response(
                '{"error": "invalid_token"}', 401, {"WWW-Authenticate": challenge}, content_type="application/json"
            )
        if token.resource != f"{base}/mcp":
            return Response(
                '{"error": "invalid_token", "error_description": "the token is for another resource"}',
                401,
                {"WWW-Authenticate": challenge + ', error="invalid_token"'},
                content_type="application/json",
            )
        granted = token.scope.split()
        if needed is not None and needed not in granted:
            wanted = " ".join(dict.fromkeys([*granted, needed]))
            step_up = state.config.step_up_challenge or (
                f'Bearer error="insufficient_scope", scope="{wanted}", '
                f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
            )
            return Response(
                '{"error": "insufficient_scope"}', 403, {"WWW-Authenticate": step_up}, content_type="application/json"
            )
        return jsonify(
            ok=True,
            sub=token.user or token.client_id,
            resource=token.resource,
            method=flask.request.method,
            **({"scope": token.scope} if needed is not None else {}),
        )

    @app.route("/.well-known/oauth-protected-resource/mcp")
    def protected_resource_metadata() -> ResponseReturnValue:
        base = flask.request.host_url.rstrip("/")
        return jsonify(
            resource=state.config.prm_resource or f"{base}/mcp",
            authorization_servers=[state.config.issuer or base],
            scopes_supported=["read", "write"],
            bearer_methods_supported=["header"],
        )

    @app.route("/oauth/register", methods=["POST"])
    def register() -> ResponseReturnValue:
        mode = state.config.registration
        if mode == "off":
            return jsonify(error="not_found"), 404
        if mode == "refuse":
            return jsonify(error="invalid_client_metadata", error_description="registration is closed"), 400
        response: Response = server.create_endpoint_response(Registration.ENDPOINT_NAME)
        return response

    @app.route("/.well-known/oauth-authorization-server")
    def metadata() -> ResponseReturnValue:
        base = flask.request.host_url.rstrip("/")
        return jsonify(
            issuer=state.config.issuer or base,
            authorization_endpoint=f"{base}/oauth/authorize",
            token_endpoint=f"{base}/oauth/token",
            revocation_endpoint=f"{base}/oauth/revoke",
            **({"registration_endpoint": f"{base}/oauth/register"} if state.config.registration != "off" else {}),
            scopes_supported=SCOPES.split(),
            response_types_supported=["code"],
            grant_types_supported=sorted(ALL_GRANTS),
            token_endpoint_auth_methods_supported=AUTH_METHODS,
            code_challenge_methods_supported=state.config.pkce_methods,
            authorization_response_iss_parameter_supported=bool(state.config.issuer),
            **({"client_id_metadata_document_supported": True} if state.config.client_id_metadata_documents else {}),
        )

    @app.route("/custom/login", methods=["GET", "POST"])
    def custom_login() -> ResponseReturnValue:
        def handle() -> ResponseReturnValue:
            body = flask.request.get_json(silent=True) if flask.request.method == "POST" else None
            data = body if isinstance(body, dict) else flask.request.values
            if data.get("user") != USERNAME or data.get("password") != PASSWORD:
                return jsonify(error="bad_credentials"), 401
            session, ttl = generate_token(40), state.config.token_ttl
            with state.lock:
                state.sessions[session] = time.time() + ttl
            return jsonify(data={"sessionToken": session, "validSeconds": ttl})

        return token_call("custom", handle)

    @app.route("/api/me")
    def me() -> ResponseReturnValue:
        session = flask.request.headers.get("X-Session-Token")
        if session is not None:
            if state.sessions.get(session, 0.0) > time.time():
                return jsonify(sub=USERNAME, scope=None, client_id=None, session=True)
            return jsonify(error="invalid_token", error_description="Unknown or expired session token."), 401
        with require_oauth.acquire() as token:
            return jsonify(sub=token.user or token.client_id, scope=token.scope, client_id=token.client_id)

    @app.route("/api/jwt")
    def verify_jwt() -> ResponseReturnValue:
        """A self-signed JWT as the bearer token: verified with the key registered under its kid (or iss)."""
        scheme, _, token = flask.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return jsonify(error="invalid_request", error_description="No bearer token."), 401
        try:
            compact = jws.extract_compact(token.encode())
            key = state.public_key(str(compact.headers().get("kid") or _claims_of(compact.payload).get("iss")))
            obj = joserfc_jwt.decode(token, key, algorithms=JWT_ALGORITHMS)
            claims = joserfc_jwt.JWTClaimsRegistry(leeway=900, exp={"essential": True}, iat={"essential": True})
            claims.validate(obj.claims)  # the leeway lets a test move its AuthBridge clock ahead
        except (JoseError, ValueError, InvalidGrantError) as exc:
            return jsonify(error="invalid_token", error_description=type(exc).__name__), 401
        with state.lock:
            state.verified_jwts.append(token)
        return jsonify(header=obj.header, claims=obj.claims)

    echo_methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]

    @app.route("/api/echo", methods=echo_methods)
    @app.route("/api/echo/", methods=echo_methods)
    @app.route("/api/echo/<path:rest>", methods=echo_methods)
    def echo(rest: str = "") -> ResponseReturnValue:
        req = flask.request
        return jsonify(
            method=req.method,
            path=req.path,
            query=req.args.to_dict(flat=False),
            query_string=req.query_string.decode("latin-1"),
            headers={k.lower(): v for k, v in req.headers.items()},
            body=req.get_data().decode("utf-8", "replace"),
        )

    @app.route("/_admin/stats")
    def admin_stats() -> ResponseReturnValue:
        return jsonify(state.stats())

    @app.route("/_admin/config", methods=["GET", "POST"])
    def admin_config() -> ResponseReturnValue:
        if flask.request.method == "POST":
            changes = flask.request.get_json(force=True)
            if not isinstance(changes, dict):
                return jsonify(error="expected a JSON object"), 400
            unknown = set(changes) - {
                "token_ttl",
                "auto_approve",
                "issuer",
                "fail_next",
                "revoke_fault",
                "delay_next",
                "registration",
                "registration_secret_ttl",
                "prm_resource",
                "pkce_methods",
                "refresh_tokens",
                "client_id_metadata_documents",
                "cimd_loopback_http",
                "step_up_challenge",
            }
            if unknown:
                return jsonify(error=f"unknown settings: {sorted(unknown)}"), 400
            with state.lock:
                if "token_ttl" in changes:
                    state.config.token_ttl = int(changes["token_ttl"])
                if "auto_approve" in changes:
                    state.config.auto_approve = bool(changes["auto_approve"])
                for flag in ("client_id_metadata_documents", "cimd_loopback_http"):
                    if flag in changes:
                        setattr(state.config, flag, bool(changes[flag]))
                if "refresh_tokens" in changes:
                    state.config.refresh_tokens = bool(changes["refresh_tokens"])
                if "issuer" in changes:
                    state.config.issuer = changes["issuer"] or None
                if "registration" in changes:
                    state.config.registration = str(changes["registration"])
                if "step_up_challenge" in changes:
                    state.config.step_up_challenge = changes["step_up_challenge"] or None
                if "prm_resource" in changes:
                    state.config.prm_resource = changes["prm_resource"] or None
                if "pkce_methods" in changes:
                    state.config.pkce_methods = list(changes["pkce_methods"])
                if "registration_secret_ttl" in changes:
                    state.config.registration_secret_ttl = int(changes["registration_secret_ttl"])
                if "fail_next" in changes:
                    state.fail_next = Fault(**changes["fail_next"]) if changes["fail_next"] else None
                if "revoke_fault" in changes:
                    state.revoke_fault = RevokeFault(**changes["revoke_fault"]) if changes["revoke_fault"] else None
                if "delay_next" in changes:
                    state.delay_next = float(changes["delay_next"] or 0.0)
        with state.lock:
            fail_next = asdict(state.fail_next) if state.fail_next else None
            revoke_fault = asdict(state.revoke_fault) if state.revoke_fault else None
            return jsonify(
                {
                    **asdict(state.config),
                    "fail_next": fail_next,
                    "revoke_fault": revoke_fault,
                    "delay_next": state.delay_next,
                }
            )

    @app.route("/_admin/jwt_keys", methods=["POST"])
    def admin_jwt_keys() -> ResponseReturnValue:
        body = flask.request.get_json(force=True)
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not isinstance(body.get("jwk"), dict):
            return jsonify(error='expected {"id": "...", "jwk": {...}}'), 400
        state.register_key(body["id"], body["jwk"])
        return jsonify(ok=True)

    @app.route("/_admin/reset", methods=["POST"])
    def admin_reset() -> ResponseReturnValue:
        state.reset()
        return jsonify(ok=True)

    @app.route("/_admin/expire", methods=["POST"])
    def admin_expire() -> ResponseReturnValue:
        return jsonify(expired=state.expire_all())

    return app


def _claims_of(payload: bytes) -> dict[str, Any]:
    """The claims of a compact JWS before verification (to find its key by ``iss``)."""
    try:
        claims = json.loads(payload)
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _ttl(client: Client, grant_type: str) -> int:
    """``expires_in`` of every token: the configured TTL (read per request, so /_admin/config changes it)."""
    return _state().config.token_ttl


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (see the READY line)")
    parser.add_argument("--token-ttl", type=int, default=3600)
    parser.add_argument("--issuer", default=None, help="send `iss` on authorization responses (RFC 9207)")
    parser.add_argument("--auto-approve", action="store_true", help="GET /oauth/authorize redirects at once")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(Config(token_ttl=args.token_ttl, auto_approve=args.auto_approve, issuer=args.issuer))
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    print(f"READY http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
