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

import re
import typing
from collections.abc import Callable, Generator, Mapping
from urllib.parse import urlsplit

import httpx

from authbridge.auth.base import json_object
from authbridge.errors import UpstreamError

__all__ = [
    "CIMD_SUPPORTED",
    "METADATA_FIELDS",
    "DiscoveryFlow",
    "challenge_params",
    "fields_from_metadata",
    "metadata_flow",
    "metadata_urls",
    "protected_resource_flow",
    "protected_resource_urls",
]

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
#: The metadata member saying the server takes a client ID metadata document's URL as a client id.
CIMD_SUPPORTED = "client_id_metadata_document_supported"

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
    if metadata.get(CIMD_SUPPORTED) is True:
        fields[CIMD_SUPPORTED] = True  # not a spec field: it tells the client choice a URL client id works
    return fields


def _json_document(response: httpx.Response, url: str, what: str) -> dict[str, typing.Any]:
    if response.status_code != 200:
        raise UpstreamError(f"the {what} at {url} answered HTTP {response.status_code}")
    return json_object(response, f"the {what} at {url}", MAX_METADATA_BYTES)


def _metadata_document(source: str) -> Generator[httpx.Request, httpx.Response, tuple[dict[str, typing.Any], str, str]]:
    """The first metadata document found for ``source``: (document, the issuer it must name, its URL)."""
    tried: list[str] = []
    for url, issuer in metadata_urls(source):
        response = yield httpx.Request("GET", url, headers={"Accept": "application/json"})
        tried.append(url)
        if 400 <= response.status_code < 500:
            continue
        return _json_document(response, url, "authorization server metadata"), issuer, url
    raise UpstreamError(f"no authorization server metadata found for {source} (tried {', '.join(tried)})")


def metadata_flow(source: str, *, allow_http: Callable[[str], bool]) -> DiscoveryFlow:
    """Fetch the metadata for ``source`` (an issuer or a metadata URL), trying each well-known URL in turn.

    A 404 (or another 4xx) moves on to the next URL; any other failure, an answer that is not a JSON
    object, or an issuer mismatch stops with an UpstreamError naming the URL.
    """
    metadata, issuer, url = yield from _metadata_document(source)
    return fields_from_metadata(metadata, issuer=issuer, where=url, allow_http=allow_http)


_CHALLENGE_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)')


def challenge_params(header: str) -> dict[str, str]:
    """The auth-params of a ``WWW-Authenticate: Bearer ...`` challenge (RFC 9110 §11.6.1), unquoted."""
    params: dict[str, str] = {}
    for name, value in _CHALLENGE_PARAM.findall(header[:8192]):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(name.lower(), value)
    return params


def _same_resource(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def protected_resource_urls(resource: str) -> list[str]:
    """RFC 9728 §3.1: the well-known URL with the resource's path inserted, then (MCP) at the root."""
    parts = urlsplit(resource)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = [f"{origin}/.well-known/oauth-protected-resource{path}"]
    if path:
        urls.append(f"{origin}/.well-known/oauth-protected-resource")
    return urls


def protected_resource_flow(resource: str, *, allow_http: Callable[[str], bool]) -> DiscoveryFlow:
    """From a protected resource's URL to its authorization server's endpoints (RFC 9728, MCP authorization).

    The resource is asked without a token: a 401's ``WWW-Authenticate`` may name the metadata URL
    (``resource_metadata``) and the scopes wanted (``scope``); else the well-known URLs are tried.
    The metadata's ``resource`` must be the resource asked for (RFC 9728 §3.3); its first
    authorization server is discovered like ``auth.discovery`` and must offer PKCE with S256. The
    fields add ``resource`` (the RFC 8707 indicator for every request) and the scopes.
    """
    probe = yield httpx.Request("GET", resource, headers={"Accept": "application/json, text/event-stream"})
    challenge = challenge_params(probe.headers.get("www-authenticate", "")) if probe.status_code == 401 else {}
    hinted = challenge.get("resource_metadata")
    candidates = [hinted] if hinted else protected_resource_urls(resource)
    document: dict[str, typing.Any] | None = None
    where = ""
    for url in candidates:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
            raise UpstreamError(f"{resource} names an unusable resource metadata URL")
        if parts.scheme == "http" and not allow_http(parts.hostname):
            raise UpstreamError(f"{resource} names a resource metadata URL that is not https")
        response = yield httpx.Request("GET", url, headers={"Accept": "application/json"})
        if 400 <= response.status_code < 500 and not hinted:
            continue
        document, where = _json_document(response, url, "protected resource metadata"), url
        break
    if document is None:
        raise UpstreamError(f"no protected resource metadata found for {resource} (tried {', '.join(candidates)})")
    named = document.get("resource")
    if not isinstance(named, str) or not _same_resource(named, resource):
        raise UpstreamError(
            f"the protected resource metadata at {where} is for another resource than {resource} "
            "(RFC 9728 §3.3: refused)"
        )
    servers = document.get("authorization_servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
        raise UpstreamError(f"the protected resource metadata at {where} names no authorization server")
    issuer_source = servers[0]
    issuer_parts = urlsplit(issuer_source)
    if (
        issuer_parts.scheme not in ("https", "http")
        or not issuer_parts.hostname
        or (issuer_parts.scheme == "http" and not allow_http(issuer_parts.hostname))
    ):
        raise UpstreamError(
            f"the protected resource metadata at {where} names an authorization server that is not https"
        )
    metadata, issuer, url = yield from _metadata_document(issuer_source)
    fields = fields_from_metadata(metadata, issuer=issuer, where=url, allow_http=allow_http)
    methods = metadata.get("code_challenge_methods_supported")
    if not isinstance(methods, list) or "S256" not in methods:
        raise UpstreamError(
            f"the authorization server {issuer} does not advertise PKCE with S256 "
            "(code_challenge_methods_supported): refused, as the MCP authorization spec requires"
        )
    fields["resource"] = named.replace("{", "{{").replace("}", "}}")
    scope = challenge.get("scope")
    supported = document.get("scopes_supported")
    if scope:
        fields["scopes"] = scope.split()
    elif isinstance(supported, list) and all(isinstance(item, str) for item in supported):
        fields["scopes"] = list(supported)
    return fields
