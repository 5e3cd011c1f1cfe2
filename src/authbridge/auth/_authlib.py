"""The one door to Authlib: typed functions over the OAuth 2.0 and OAuth 1.0a protocol pieces AuthBridge uses."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import typing
from datetime import datetime
from urllib.parse import quote_plus

from authlib.common.security import generate_token
from authlib.common.urls import url_decode
from authlib.oauth1.rfc5849.client_auth import ClientAuth
from authlib.oauth1.rfc5849.signature import generate_signature_base_string
from authlib.oauth1.rfc5849.util import escape
from authlib.oauth2.rfc6749.errors import MissingCodeException
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from authlib.oauth2.rfc7523 import client_secret_jwt_sign
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc.jwk import OctKey

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "client_secret_jwt",
    "client_secret_basic",
    "create_pkce_pair",
    "grant_fields",
    "new_state",
    "oauth1_sign",
    "rsa_private_key",
]

#: RFC 7523 §2.2: the ``client_assertion_type`` of a JWT client assertion.
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: How long a client assertion is valid: long enough for one request, short against replay.
_ASSERTION_LIFETIME = 300
_VERIFIER_LENGTH = 64  # RFC 7636 §4.1: 43 to 128 characters; 64 of 62 symbols is about 381 bits


def create_pkce_pair() -> tuple[str, str]:
    """Return a new PKCE ``(code_verifier, code_challenge)`` pair, the challenge by method S256.

    The verifier is made of letters and digits (a subset of RFC 7636's unreserved characters).
    """
    verifier = str(generate_token(_VERIFIER_LENGTH))
    return verifier, str(create_s256_code_challenge(verifier))


def new_state() -> str:
    """Return a new OAuth ``state`` value: 32 random bytes, base64url-encoded (43 characters)."""
    # Authlib's generate_token draws characters, not bytes; the standard library says "32 bytes" directly.
    return secrets.token_urlsafe(32)


def client_secret_basic(client_id: str, client_secret: str) -> str:
    """Return the ``Authorization`` header value of RFC 6749 §2.3.1 (``client_secret_basic``).

    The id and the secret are each form-urlencoded (Appendix B) before they are joined by ``:`` and
    base64-encoded, so a ``:`` in the id or a ``+`` in the secret survives the round trip.
    """
    # Written here because Authlib's encode_client_secret_basic joins the raw values and encodes them
    # as latin-1: a ':' in the client id breaks the split, and non-latin-1 characters raise.
    text = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(text.encode("ascii")).decode("ascii")


def client_secret_jwt(client_id: str, client_secret: str, audience: str, *, now: datetime) -> str:
    """Return an RFC 7523 §2.2 client assertion signed with the client secret (``client_secret_jwt``, HS256).

    Its claims: ``iss`` and ``sub`` the client id, ``aud`` the endpoint it is sent to, ``iat`` now,
    ``exp`` five minutes later, and a random ``jti``.
    """
    issued = int(now.timestamp())
    key = OctKey.import_key(client_secret)
    return str(
        client_secret_jwt_sign(key, client_id, audience, issued_at=issued, expires_at=issued + _ASSERTION_LIFETIME)
    )


def grant_fields(
    grant_type: str,
    *,
    code: str | None = None,
    redirect_uri: str | None = None,
    code_verifier: str | None = None,
    scope: str | None = None,
    username: str | None = None,
    password: str | None = None,
    refresh_token: str | None = None,
) -> list[tuple[str, str]]:
    """Return the standard fields of a token request (RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6), in order.

    Empty and None values are left out; ``grant_type`` comes first.

    Raises:
        ValueError: ``grant_type`` is ``authorization_code`` and there is no ``code``.
    """
    optional = {
        "code": code,
        "code_verifier": code_verifier,
        "scope": scope,
        "username": username,
        "password": password,
        "refresh_token": refresh_token,
    }
    try:
        body = prepare_token_request(grant_type, redirect_uri=redirect_uri, **optional)
    except MissingCodeException:
        raise ValueError("the authorization_code grant needs a code") from None
    # Authlib writes the fields as a form body; the same fields also go into JSON bodies and query
    # strings, so they are decoded back into pairs and each caller encodes them for where they go.
    return [(str(name), str(value)) for name, value in url_decode(body)]


# -- OAuth 1.0a (RFC 5849) ----------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def rsa_private_key(pem: str) -> rsa.RSAPrivateKey:
    """The RSA private key of a PEM text, parsed once (parsing costs far more than signing).

    Raises:
        ValueError: the text is not an unencrypted PEM RSA private key (the message never quotes it).
    """
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("is not an RSA private key")
    return key


def _rsa(hash_: hashes.HashAlgorithm) -> typing.Callable[[typing.Any, typing.Any], str]:
    def sign(client: typing.Any, request: typing.Any) -> str:
        # RFC 5849 §3.4.3: RSASSA-PKCS1-v1_5 over Authlib's signature base string.
        base = generate_signature_base_string(request).encode()
        return base64.b64encode(rsa_private_key(client.rsa_key).sign(base, padding.PKCS1v15(), hash_)).decode()

    return sign


def _hmac_sha256(client: typing.Any, request: typing.Any) -> str:
    # RFC 5849 §3.4.2 with SHA-256 for SHA-1 (NetSuite, Garmin): same key, same base string.
    key = f"{escape(client.client_secret or '')}&{escape(client.token_secret or '')}"
    base = generate_signature_base_string(request)
    return base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()).decode()


class _ClientAuth(ClientAuth):  # type: ignore[misc]
    """Authlib's OAuth 1 client with the SHA-256 methods and cached RSA keys (the class's own table, not a global)."""

    SIGNATURE_METHODS: typing.ClassVar[dict[str, typing.Any]] = {
        **ClientAuth.SIGNATURE_METHODS,
        "HMAC-SHA256": _hmac_sha256,
        "RSA-SHA1": _rsa(hashes.SHA1()),  # noqa: S303 - RFC 5849's method, the provider chooses it
        "RSA-SHA256": _rsa(hashes.SHA256()),
    }


_FORM = "application/x-www-form-urlencoded"


def oauth1_sign(
    method: str,
    url: str,
    *,
    content_type: str | None,
    body: bytes,
    client_id: str,
    client_secret: str,
    signature_method: str,
    location: str = "header",
    token: str | None = None,
    token_secret: str | None = None,
    callback: str | None = None,
    verifier: str | None = None,
    realm: str | None = None,
) -> tuple[str, str | None]:
    """Sign one request (RFC 5849 §3): return its URL and its ``Authorization`` header (None with ``location="query"``).

    A form-encoded body's parameters are part of the signature (§3.4.1.3.1); another body is not
    signed and is sent as it is. With an ``RSA-*`` method ``client_secret`` is the PEM private key.
    A fresh nonce and timestamp are drawn each call.
    """
    rsa_method = signature_method.startswith("RSA-")
    client = _ClientAuth(
        client_id,
        client_secret=None if rsa_method else client_secret,
        token=token,
        token_secret=token_secret,
        redirect_uri=callback,
        rsa_key=client_secret if rsa_method else None,
        verifier=verifier,
        signature_method=signature_method,
        signature_type="QUERY" if location == "query" else "HEADER",
        realm=realm,
    )
    form = content_type is not None and content_type.split(";")[0].strip().lower() == _FORM
    headers = {"Content-Type": _FORM} if form else {}
    signed_url, signed_headers, _ = client.sign(method, url, headers, body.decode("latin-1") if form else b"")
    return str(signed_url), signed_headers.get("Authorization")
