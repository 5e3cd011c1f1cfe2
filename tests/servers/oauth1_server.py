"""A real OAuth 1.0a provider for tests, built from Authlib's OAuth 1 server pieces (Flask integration).

It runs in a thread on 127.0.0.1 (``run_oauth1_server()``) and keeps everything in memory:

- ``POST /oauth/request_token``, ``GET|POST /oauth/authorize`` (a consent form), ``POST /oauth/access_token``:
  RFC 5849's three legs, by Authlib's ``AuthorizationServer``;
- ``/api/echo`` (any method): a resource protected by Authlib's ``ResourceProtector`` (signature, timestamp,
  nonce checked), answering what it verified; ``/api/me`` the same for GET;
- ``/_admin/*``: test controls (faults of the request-token step, stats).

Clients: ``consumer`` (HMAC-SHA1, HMAC-SHA256, PLAINTEXT; its secret has characters RFC 5849 §3.6
encodes), ``rsa-consumer`` (RSA-SHA1, RSA-SHA256, with ``RSA_PRIVATE_KEY``'s public key). A token
credential for the token-based flow is pre-issued to ``consumer``: ``TBA_TOKEN``/``TBA_SECRET``.
HMAC-SHA256 and RSA-SHA256 are verified here over Authlib's signature base string.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import re
import threading
import typing
from collections.abc import Iterator

import flask
import markupsafe
from authlib.integrations.flask_oauth1 import AuthorizationServer, ResourceProtector
from authlib.oauth1 import ClientMixin, TemporaryCredential
from authlib.oauth1.errors import OAuth1Error
from authlib.oauth1.rfc5849.base_server import BaseServer
from authlib.oauth1.rfc5849.signature import generate_signature_base_string
from authlib.oauth1.rfc5849.util import escape
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from werkzeug.serving import make_server

CONSUMER_KEY = "consumer"
CONSUMER_SECRET = "c0nsumer secret&+=/"  # every character RFC 5849 §3.6 percent-encodes
RSA_CONSUMER_KEY = "rsa-consumer"
TBA_TOKEN = "tba-token-id"
TBA_SECRET = "tba-token-secret"
USER = "alice"

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PRIVATE_KEY = _RSA.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
_RSA_PUBLIC = (
    _RSA.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
)


def _verify_hmac_sha256(request: typing.Any) -> bool:
    if not request.client_secret:
        return False
    key = f"{escape(request.client_secret)}&{escape(request.token_secret or '')}"
    base = generate_signature_base_string(request)
    expected = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, request.signature)


def _verify_rsa_sha256(request: typing.Any) -> bool:
    public = serialization.load_pem_public_key(request.rsa_public_key.encode())
    assert isinstance(public, rsa.RSAPublicKey)
    try:
        public.verify(
            base64.b64decode(request.signature),
            generate_signature_base_string(request).encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


_METHODS = {
    **BaseServer.SIGNATURE_METHODS,
    "HMAC-SHA256": _verify_hmac_sha256,
    "RSA-SHA256": _verify_rsa_sha256,
}
_SUPPORTED = ["HMAC-SHA1", "HMAC-SHA256", "RSA-SHA1", "RSA-SHA256", "PLAINTEXT"]


class _Server(AuthorizationServer):  # type: ignore[misc]
    SIGNATURE_METHODS = _METHODS
    SUPPORTED_SIGNATURE_METHODS = _SUPPORTED


class _Protector(ResourceProtector):  # type: ignore[misc]
    SIGNATURE_METHODS = _METHODS
    SUPPORTED_SIGNATURE_METHODS = _SUPPORTED


@dataclasses.dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    secret: str | None = None
    public_key: str | None = None

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_client_secret(self) -> str | None:
        return self.secret

    def get_rsa_public_key(self) -> str | None:
        return self.public_key


@dataclasses.dataclass
class TokenCredential:
    client_id: str
    oauth_token: str
    oauth_token_secret: str
    user: str

    def get_oauth_token(self) -> str:
        return self.oauth_token

    def get_oauth_token_secret(self) -> str:
        return self.oauth_token_secret


@dataclasses.dataclass
class State:
    """Everything the provider holds, and the test controls."""

    temporary: dict[str, TemporaryCredential] = dataclasses.field(default_factory=dict)
    tokens: dict[str, TokenCredential] = dataclasses.field(default_factory=dict)
    nonces: set[tuple[str, str, str, str]] = dataclasses.field(default_factory=set)
    #: What the request-token endpoint answers: ``ok``, ``garbage``, ``huge``, ``reject``, ``unconfirmed``.
    request_token_mode: str = "ok"
    stats: dict[str, int] = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def count(self, name: str) -> None:
        with self.lock:
            self.stats[name] = self.stats.get(name, 0) + 1

    def reset(self) -> None:
        with self.lock:
            self.temporary.clear()
            self.nonces.clear()
            self.stats.clear()
            self.request_token_mode = "ok"
            self.tokens.clear()
            self.tokens[TBA_TOKEN] = TokenCredential(CONSUMER_KEY, TBA_TOKEN, TBA_SECRET, USER)


CLIENTS = {
    CONSUMER_KEY: Client(CONSUMER_KEY, secret=CONSUMER_SECRET),
    RSA_CONSUMER_KEY: Client(RSA_CONSUMER_KEY, public_key=_RSA_PUBLIC),
}

_CONSENT = """<!doctype html><title>Authorize</title>
<form method="post" action="/oauth/authorize">
<input type="hidden" name="oauth_token" value="{token}">
<button name="confirm" value="yes">Allow</button> <button name="confirm" value="no">Deny</button>
</form>"""


def create_app(state: State) -> flask.Flask:
    """The provider's Flask app over ``state``."""
    app = flask.Flask(__name__)

    def exists_nonce(nonce: str, timestamp: str, client_id: str, token: str | None) -> bool:
        key = (nonce, str(timestamp), client_id, token or "")
        with state.lock:
            if key in state.nonces:
                return True
            state.nonces.add(key)
            return False

    server = _Server(app, query_client=CLIENTS.get)
    server.register_hook("exists_nonce", exists_nonce)

    def create_temporary(token: dict[str, str], client_id: str, redirect_uri: str) -> TemporaryCredential:
        credential = TemporaryCredential(**token, client_id=client_id, oauth_callback=redirect_uri)
        state.temporary[token["oauth_token"]] = credential
        return credential

    def verifier(credential: TemporaryCredential, user: str, value: str) -> None:
        credential["user_id"], credential["oauth_verifier"] = user, value

    def create_token(token: dict[str, str], temporary: TemporaryCredential) -> TokenCredential:
        credential = TokenCredential(temporary.get_client_id(), token["oauth_token"], token["oauth_token_secret"], USER)
        state.tokens[credential.oauth_token] = credential
        return credential

    server.register_hook("create_temporary_credential", create_temporary)
    server.register_hook("get_temporary_credential", state.temporary.get)
    server.register_hook("delete_temporary_credential", lambda token: state.temporary.pop(token, None))
    server.register_hook("create_authorization_verifier", verifier)
    server.register_hook("create_token_credential", create_token)

    def query_token(client_id: str, token: str) -> TokenCredential | None:
        found = state.tokens.get(token)
        return found if found is not None and found.client_id == client_id else None

    protector = _Protector(app, query_client=CLIENTS.get, query_token=query_token, exists_nonce=exists_nonce)

    @app.post("/oauth/request_token")
    def request_token() -> typing.Any:
        state.count("request_token")
        mode = state.request_token_mode
        if mode == "garbage":
            return flask.Response("<html>Service temporarily unavailable</html>", 200, mimetype="text/html")
        if mode == "huge":
            return flask.Response(b"oauth_token=" + b"A" * (3 * 1024 * 1024), 200)
        if mode == "reject":
            return flask.Response("oauth_problem=signature_invalid", 401)
        response = server.create_temporary_credentials_response()
        if mode == "unconfirmed" and response.status_code == 200:
            return flask.Response(re.sub(rb"&?oauth_callback_confirmed=\w+", b"", response.get_data()), 200)
        return response

    @app.route("/oauth/authorize", methods=["GET", "POST"])
    def authorize() -> typing.Any:
        if flask.request.method == "GET":
            try:
                server.check_authorization_request()
            except OAuth1Error as error:
                return flask.Response(error.description or error.error, 400)
            return _CONSENT.format(token=markupsafe.escape(flask.request.args["oauth_token"]))
        granted = USER if flask.request.form.get("confirm") == "yes" else None
        return server.create_authorization_response(grant_user=granted)

    @app.post("/oauth/access_token")
    def access_token() -> typing.Any:
        state.count("access_token")
        return server.create_token_response()

    @app.route("/api/echo", methods=["GET", "POST", "PUT"])
    @app.get("/api/me")
    def echo() -> typing.Any:
        request = flask.request
        body = request.form.to_dict() if request.mimetype == "application/x-www-form-urlencoded" else request.data
        try:
            verified = protector.validate_request(request.method, request.url, body, request.headers)
        except OAuth1Error as error:
            state.count("rejected")
            return flask.jsonify(error=error.error, description=error.description), 401
        state.count("verified")
        return flask.jsonify(
            user=verified.credential.user,
            method=request.method,
            query=request.args.to_dict(),
            form=request.form.to_dict(),
            body=request.get_data(as_text=True),
            signature_method=verified.signature_method,
            authorization=request.headers.get("Authorization", ""),
        )

    @app.post("/_admin/mode")
    def mode() -> typing.Any:
        state.request_token_mode = flask.request.get_json()["request_token"]
        return {"ok": True}

    return app


@dataclasses.dataclass(frozen=True)
class OAuth1Server:
    """A running provider: its base URL and its state (same process)."""

    base_url: str
    state: State

    @property
    def request_token_url(self) -> str:
        return f"{self.base_url}/oauth/request_token"

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/oauth/authorize"

    @property
    def access_token_url(self) -> str:
        return f"{self.base_url}/oauth/access_token"


@contextlib.contextmanager
def run_oauth1_server() -> Iterator[OAuth1Server]:
    """Serve the provider on a free loopback port in a thread; stop it on exit."""
    state = State()
    state.reset()
    http = make_server("127.0.0.1", 0, create_app(state), threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield OAuth1Server(f"http://127.0.0.1:{http.server_port}", state)
    finally:
        http.shutdown()
        thread.join(timeout=5)
