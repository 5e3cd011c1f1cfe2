"""Client authentication methods (``auth.client_auth``): the second, smaller registry next to the auth types.

Each method puts a confidential client's id and secret on a token, refresh or revocation request,
in place. A public client (no secret) sends only its ``client_id`` and never reaches a method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime

import httpx

from authbridge.auth import _authlib

__all__ = ["CLIENT_AUTH_METHODS", "Client", "ClientAuthMethod"]

FieldValue = str | bool | int | float


@dataclasses.dataclass(frozen=True)
class Client:
    """The client to authenticate, and where the request goes (the audience of a client assertion)."""

    client_id: str
    secret: str = dataclasses.field(repr=False)
    audience: str
    now: datetime


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


#: ``auth.client_auth`` value to its method.
CLIENT_AUTH_METHODS: Mapping[str, ClientAuthMethod] = {
    "header": _header,
    "body": _body,
    "both": _both,
    "client_secret_jwt": _client_secret_jwt,
}
