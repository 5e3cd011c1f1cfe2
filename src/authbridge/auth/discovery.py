"""Authorization server discovery (RFC 8414, OpenID Connect Discovery 1.0): endpoints from metadata.

``auth.discovery`` names an issuer (``https://login.acme.example``, ``https://acme.example/tenant``)
or a metadata document's URL (one with ``/.well-known/`` in its path). The metadata's endpoints
(authorization, token, revocation) fill the URLs the spec leaves out, and its issuer becomes
``auth.issuer`` when the server sends ``iss`` on redirects (RFC 9207); a URL the spec gives wins,
and ``pkce`` and ``client_auth`` stay as the spec says. Sans-IO like the rest of
``auth/``: :func:`metadata_flow` yields the requests and returns the fields to fill; the broker
sends them (through its SSRF guard, size cap and deadline) and caches the result.

```
flow = metadata_flow("https://login.acme.example", allow_http=lambda host: False)
request = next(flow)                  # GET https://login.acme.example/.well-known/oauth-authorization-server
fields = flow.send(response)          # StopIteration.value: {"authorization_url": ..., "token_url": ...}
```

RFC 8414 §3.3: the document's ``issuer`` must be the issuer it was fetched for, or it is refused
(a server cannot speak for another). The well-known URLs are tried in the order the MCP
authorization spec gives: OAuth metadata with the path inserted, then OpenID configuration with the
path inserted, then OpenID configuration appended to the path; an issuer without a path has two.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Generator, Mapping
from urllib.parse import urlsplit

import httpx

from authbridge.errors import UpstreamError

__all__ = ["METADATA_FIELDS", "DiscoveryFlow", "metadata_flow", "metadata_urls", "fields_from_metadata"]

#: The largest metadata document read (real ones are a few KiB).
MAX_METADATA_BYTES = 256 * 1024
#: Metadata member to the ``auth`` field it fills.
METADATA_FIELDS = {
    "authorization_endpoint": "authorization_url",
    "token_endpoint": "token_url",
    "revocation_endpoint": "revoke_url",
    "registration_endpoint": "registration_url",
}
_WELL_KNOWN = "/.well-known/"

#: Yields each metadata request, is sent each answer, returns the fields to fill.
DiscoveryFlow = Generator[httpx.Request, httpx.Response, dict[str, typing.Any]]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def metadata_urls(source: str) -> list[tuple[str, str]]:
    """The metadata URLs to try for ``source``, each with the issuer its document must name.

    A URL with ``/.well-known/`` in its path is the document itself: its issuer is the URL with the
    well-known part taken out (RFC 8414 §3: ``/.well-known/oauth-authorization-server/tenant`` is
    issuer ``/tenant``; OIDC: ``/tenant/.well-known/openid-configuration`` is issuer ``/tenant``).
    """
    parts = urlsplit(source)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path
    if _WELL_KNOWN in path:
        before, _, after = path.partition(_WELL_KNOWN)
        _, _, suffix = after.partition("/")
        issuer_path = before.rstrip("/") or ("/" + suffix if suffix else "")
        return [(source, origin + issuer_path)]
    path = path.rstrip("/")
    issuer = origin + path
    if not path:
        return [
            (f"{origin}/.well-known/oauth-authorization-server", issuer),
            (f"{origin}/.well-known/openid-configuration", issuer),
        ]
    return [
        (f"{origin}/.well-known/oauth-authorization-server{path}", issuer),
        (f"{origin}/.well-known/openid-configuration{path}", issuer),
        (f"{origin}{path}/.well-known/openid-configuration", issuer),
    ]


def _endpoint(metadata: Mapping[str, object], name: str, allow_http: Callable[[str], bool], where: str) -> str | None:
    value = metadata.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise UpstreamError(f"the authorization server metadata at {where} has an invalid {name}")
    parts = urlsplit(value)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password or parts.fragment:
        raise UpstreamError(f"the authorization server metadata at {where}: {name} is not an absolute https URL")
    if parts.scheme == "http" and not allow_http(host):
        raise UpstreamError(f"the authorization server metadata at {where}: {name} is not https")
    return value.replace("{", "{{").replace("}", "}}")  # a literal URL, not a template


def fields_from_metadata(
    metadata: Mapping[str, object], *, issuer: str, where: str, allow_http: Callable[[str], bool]
) -> dict[str, typing.Any]:
    """The ``auth`` fields a metadata document fills (before explicit fields win).

    Raises:
        UpstreamError: the document is for another issuer, or an endpoint is not a usable URL.
    """
    if metadata.get("issuer") != issuer:
        raise UpstreamError(
            f"the authorization server metadata at {where} names another issuer than {issuer} (RFC 8414 §3.3: refused)"
        )
    fields: dict[str, typing.Any] = {}
    for member, field in METADATA_FIELDS.items():
        url = _endpoint(metadata, member, allow_http, where)
        if url is not None:
            fields[field] = url
    if metadata.get("authorization_response_iss_parameter_supported") is True:
        fields["issuer"] = issuer.replace("{", "{{").replace("}", "}}")
    return fields


def metadata_flow(source: str, *, allow_http: Callable[[str], bool]) -> DiscoveryFlow:
    """Fetch the metadata for ``source`` (an issuer or a metadata URL), trying each well-known URL in turn.

    A 404 (or another 4xx) moves on to the next URL; any other failure, an answer that is not a JSON
    object, or an issuer mismatch stops with an UpstreamError naming the URL.
    """
    tried: list[str] = []
    for url, issuer in metadata_urls(source):
        response = yield httpx.Request("GET", url, headers={"Accept": "application/json"})
        tried.append(url)
        if 400 <= response.status_code < 500:
            continue
        if response.status_code != 200:
            raise UpstreamError(f"the authorization server metadata at {url} answered HTTP {response.status_code}")
        if len(response.content) > MAX_METADATA_BYTES:
            raise UpstreamError(f"the authorization server metadata at {url} is larger than {MAX_METADATA_BYTES} bytes")
        try:
            metadata = json.loads(response.content)
        except ValueError:
            raise UpstreamError(f"the authorization server metadata at {url} is not JSON") from None
        if not isinstance(metadata, dict):
            raise UpstreamError(f"the authorization server metadata at {url} is not a JSON object")
        return fields_from_metadata(metadata, issuer=issuer, where=url, allow_http=allow_http)
    raise UpstreamError(f"no authorization server metadata found for {source} (tried {', '.join(tried)})")
