"""Client authentication methods (``auth.client_auth``): the second, smaller registry next to the auth types.

Each method puts a confidential client's id and secret on a token, refresh or revocation request,
in place. A public client (no secret) sends only its ``client_id`` and never reaches a method.
``private_key_jwt`` signs with the client's private key instead (``Client.secret`` holds it).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import httpx

from authbridge.auth import _authlib
from authbridge.auth.jwt import load_signing_key, sign

__all__ = ["ASSERTION_LIFETIME", "CLIENT_AUTH_METHODS", "KEY_METHODS", "Client", "ClientAuthMethod"]

FieldValue = str | bool | int | float


@dataclasses.dataclass(frozen=True)
class Client:
    """The client to authenticate, and where the request goes (the audience of a client assertion)."""

    client_id: str
    secret: str = dataclasses.field(repr=False)
    audience: str
    now: datetime
    #: ``private_key_jwt``: the key's id (the assertion's ``kid``) and the signing algorithm.
    key_id: str | None = None
    alg: str = "RS256"


#: A method: set the fields and headers that authenticate ``client``.
ClientAuthMethod = Callable[[Client, dict[str, FieldValue], httpx.Headers], None]


def _header(client: Client, fields: dict[str, FieldValue], headers: httpx.Headers) -> None:
    """RFC 6749 §2.3.1 ``client_secret_basic``; an ``Authorization`` header set in the spec is left as it is."""
    if "authorization" not in headers:
        headers["Authorization"] = _authlib.client_secret_basic(client.client_id, client.secret)


def _body(client: Client, fields: dict[str, FieldValue], headers: httpx.Headers) -> None:
    """RFC 6749 §2.3.1 ``client_secret_post``: the id and secret as fields."""
    fields["client_id"] = client.client_id
    fields["client_secret"] = client.secret


def _both(client: Client, fields: dict[str, FieldValue], headers: httpx.Headers) -> None:
    """The header and the fields (written by hand: Authlib's ClientAuth applies exactly one method)."""
    _header(client, fields, headers)
    _body(client, fields, headers)


def _client_secret_jwt(client: Client, fields: dict[str, FieldValue], headers: httpx.Headers) -> None:
    """RFC 7523 §2.2: a JWT signed with the secret (HS256) for the endpoint; the secret itself is not sent."""
    fields["client_assertion_type"] = _authlib.CLIENT_ASSERTION_TYPE
    fields["client_assertion"] = _authlib.client_secret_jwt(
        client.client_id, client.secret, client.audience, now=client.now
    )


#: How long a client assertion is valid: long enough for one request, short against replay.
ASSERTION_LIFETIME = timedelta(minutes=5)
#: The methods that sign with ``auth.client_private_key`` rather than the client secret.
KEY_METHODS = frozenset({"private_key_jwt"})


def _private_key_jwt(client: Client, fields: dict[str, FieldValue], headers: httpx.Headers) -> None:
    """RFC 7523 §2.2 and OpenID Connect Core §9: a JWT signed with the client's private key.

    Its claims: ``iss`` and ``sub`` the client id, ``aud`` the endpoint it is sent to, ``iat`` now,
    ``exp`` five minutes later, a random ``jti``; its header names the key (``kid``) when one is set.
    """
    key = load_signing_key(client.secret, client.alg, field="auth.client_private_key")
    issued = int(client.now.timestamp())
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": client.audience,
        "iat": issued,
        "exp": issued + int(ASSERTION_LIFETIME.total_seconds()),
        "jti": secrets.token_urlsafe(24),
    }
    header = {"kid": client.key_id} if client.key_id else {}
    fields["client_assertion_type"] = _authlib.CLIENT_ASSERTION_TYPE
    fields["client_assertion"] = sign(key, header, claims, field="auth.client_private_key")


#: ``auth.client_auth`` value to its method.
CLIENT_AUTH_METHODS: Mapping[str, ClientAuthMethod] = {
    "header": _header,
    "body": _body,
    "both": _both,
    "client_secret_jwt": _client_secret_jwt,
    "private_key_jwt": _private_key_jwt,
}
