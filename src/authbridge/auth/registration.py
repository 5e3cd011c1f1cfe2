"""OAuth 2.0 dynamic client registration (RFC 7591), sans-IO: the request, and reading its answer.

``auth.client_registration: dynamic`` lets AuthBridge register its own client at the server's
registration endpoint (``auth.registration_url``, or the metadata's ``registration_endpoint`` with
``auth.discovery``) at the first connection, with its redirect URI and the spec's client metadata.
The broker keeps the result encrypted and reuses it; a secret whose ``client_secret_expires_at``
has passed is registered again.

```
request = registration_request(endpoint, redirect_uri="https://auth.example.com/oauth/callback", spec=spec)
client = read_registration(response, endpoint=endpoint)   # Registered(client_id, client_secret, expires_at)
```
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx

from authbridge.auth.base import json_object
from authbridge.errors import UpstreamError
from authbridge.redact import redact
from authbridge.spec import Integration, OAuth2Auth

__all__ = ["Registered", "read_registration", "registration_request"]

#: ``auth.client_auth`` to the RFC 7591 ``token_endpoint_auth_method`` asked for.
AUTH_METHODS = {
    "header": "client_secret_basic",
    "body": "client_secret_post",
    "both": "client_secret_basic",
    "client_secret_jwt": "client_secret_jwt",
}
_MAX_ANSWER = 64 * 1024
#: 9999-12-31T23:59:59Z: a later expiry is not a date.
_LAST_SECOND = 253402300799


@dataclasses.dataclass(frozen=True)
class Registered:
    """What the server registered: the client id, its secret (None: a public client), when the secret expires."""

    client_id: str
    client_secret: str | None = dataclasses.field(repr=False)
    expires_at: datetime | None = None


def registration_request(
    endpoint: str, *, redirect_uri: str, spec: Integration, metadata: Mapping[str, typing.Any] | None = None
) -> httpx.Request:
    """The RFC 7591 §3.1 request: JSON client metadata; ``redirect_uris`` is always AuthBridge's callback."""
    auth = typing.cast(OAuth2Auth, spec.auth)
    grant = auth.grant_type
    body: dict[str, typing.Any] = {
        "client_name": spec.name,
        "grant_types": [grant, "refresh_token"] if grant == "authorization_code" and auth.refresh_token else [grant],
        "response_types": ["code"] if grant == "authorization_code" else [],
        "token_endpoint_auth_method": AUTH_METHODS[auth.client_auth],
    }
    if auth.scopes:
        body["scope"] = auth.scope_separator.join(auth.scopes)
    body.update(metadata or auth.registration_metadata)
    body["redirect_uris"] = [redirect_uri]
    return httpx.Request("POST", endpoint, json=body, headers={"Accept": "application/json"})


def _error(response: httpx.Response, endpoint: str) -> UpstreamError:
    detail = ""
    try:
        data = json.loads(response.content[:_MAX_ANSWER])
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        detail = f": {redact(data['error'])[:100]}"
        if isinstance(data.get("error_description"), str):
            detail += f" ({redact(data['error_description'])[:300]})"
    return UpstreamError(
        f"the authorization server refused to register a client at {endpoint} (HTTP {response.status_code}){detail}"
    )


def read_registration(response: httpx.Response, *, endpoint: str) -> Registered:
    """Read a registration answer (RFC 7591 §3.2.1); UpstreamError says what is wrong with it.

    The secret never appears in an error: a malformed answer is described, not quoted.
    """
    if response.status_code not in (200, 201):
        raise _error(response, endpoint)
    data = json_object(response, f"the client registration answer from {endpoint}", _MAX_ANSWER)
    client_id, secret = data.get("client_id"), data.get("client_secret")
    if not isinstance(client_id, str) or not client_id or len(client_id) > 1024:
        raise UpstreamError(f"the client registration answer from {endpoint} has no usable client_id")
    if secret is not None and (not isinstance(secret, str) or not secret or len(secret) > 4096):
        raise UpstreamError(f"the client registration answer from {endpoint} has an unusable client_secret")
    expires = data.get("client_secret_expires_at", 0)
    if isinstance(expires, bool) or not isinstance(expires, int) or not 0 <= expires <= _LAST_SECOND:
        raise UpstreamError(f"the client registration answer from {endpoint} has an invalid client_secret_expires_at")
    expires_at = datetime.fromtimestamp(expires, UTC) if expires and secret is not None else None
    return Registered(client_id, secret, expires_at)
