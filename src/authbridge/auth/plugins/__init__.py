"""The registry of auth types: ``auth.type`` to its plugin. Adding a type is one module here plus its model in spec/.

```
plugin = plugin_for(spec.auth)
if plugin.redirects(spec):
    ...
```
"""

from __future__ import annotations

import typing
from collections.abc import Mapping

import httpx

from authbridge.auth.base import AuthContext
from authbridge.auth.placement import build_api_request
from authbridge.auth.plugin import AuthPlugin
from authbridge.auth.plugins.api_token import ApiTokenPlugin
from authbridge.auth.plugins.aws_sigv4 import AwsSigV4Plugin
from authbridge.auth.plugins.basic import BasicPlugin
from authbridge.auth.plugins.custom_token import CustomTokenPlugin
from authbridge.auth.plugins.hmac_signature import HmacSignaturePlugin
from authbridge.auth.plugins.jwt_bearer import JwtBearerPlugin
from authbridge.auth.plugins.none import NonePlugin
from authbridge.auth.plugins.oauth1 import OAuth1Plugin
from authbridge.auth.plugins.oauth2 import OAuth2Plugin
from authbridge.auth.plugins.self_signed_jwt import SelfSignedJwtPlugin
from authbridge.spec.templating import TemplateSource

__all__ = ["PLUGINS", "api_request", "credential_headers_and_query", "plugin_for"]

#: Every auth type, in the order the console lists them.
PLUGINS: Mapping[str, AuthPlugin] = {
    plugin.type: plugin
    for plugin in (
        OAuth2Plugin(),
        CustomTokenPlugin(),
        JwtBearerPlugin(),
        SelfSignedJwtPlugin(),
        ApiTokenPlugin(),
        BasicPlugin(),
        OAuth1Plugin(),
        AwsSigV4Plugin(),
        HmacSignaturePlugin(),
        NonePlugin(),
    )
}


class _Typed(typing.Protocol):
    @property
    def type(self) -> str: ...


def plugin_for(auth: _Typed | str) -> AuthPlugin:
    """The plugin of an ``auth`` block (or of a type name)."""
    name = auth if isinstance(auth, str) else auth.type
    try:
        return PLUGINS[name]
    except KeyError:
        raise ValueError(f"unknown auth type {name!r}; known: {', '.join(PLUGINS)}") from None


def credential_headers_and_query(ctx: AuthContext) -> tuple[dict[str, str], dict[str, str]]:
    """The headers and query parameters every request of this connection carries (its auth type decides)."""
    return plugin_for(ctx.integration.auth).placement(ctx)


def api_request(
    ctx: AuthContext, method: str, path: str, headers: Mapping[str, TemplateSource] | None = None
) -> httpx.Request:
    """A request to ``base_url + path`` with the integration's parameters and the credentials in place.

    ``headers`` (``test.headers``) are rendered like request headers (``{token}`` included) and sent
    too; the credential headers win on a clash.

    ``path`` is a template (``test.path``): parameter and credential values in it are
    percent-encoded, so they cannot add path segments or a query, nor be ``.`` or ``..``.
    """
    request = build_api_request(ctx, credential_headers_and_query, method, path, headers)
    plugin = plugin_for(ctx.integration.auth)
    return plugin.sign(ctx, request) if plugin.signs(ctx.integration) else request
