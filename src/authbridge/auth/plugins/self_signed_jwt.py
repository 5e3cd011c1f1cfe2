"""``jwt``: a JWT that AuthBridge signs is itself the token (App Store Connect, Ghost admin API, Zoom SDK).

Nothing is sent to obtain it: connecting signs one, and the refresher signs a new one inside the
refresh window (half its lifetime for a short ``ttl``) or after the API rejects it. It is stored
and placed like any token (``token`` block: ``Authorization: Bearer {token}`` by default).
"""

from __future__ import annotations

from authbridge.auth.base import AuthContext, TokenSet
from authbridge.auth.form import jwt_fields
from authbridge.auth.jwt import mint_jwt
from authbridge.auth.plugin import AuthPlugin, TokenExchange, TokenFlow
from authbridge.spec import Integration
from authbridge.spec.models import JwtAuth

__all__ = ["SelfSignedJwtPlugin"]


def _auth(spec: Integration) -> JwtAuth:
    auth = spec.auth
    if not isinstance(auth, JwtAuth):
        raise TypeError(f"integration {spec.key} is not a self-signed JWT integration")
    return auth


class SelfSignedJwtPlugin(AuthPlugin):
    """Sign a JWT and use it as the token; sign a new one to refresh."""

    type = "jwt"
    label = "Self-signed JWT"
    model = JwtAuth
    form_title = "Self-signed JWT"
    form_intro = (
        "AuthBridge signs a JWT with the account's key and sends it as the token, signing a new one before "
        "it expires: App Store Connect, Ghost's Admin API, Zoom SDK tokens."
    )
    form_fields = jwt_fields("jwt", "auth")
    form_sections = ("token", "refresh")

    def refreshable(self, spec: Integration) -> bool:
        return True

    def begin(self, ctx: AuthContext) -> TokenExchange:
        return TokenExchange(self._flow(ctx), hookable=False)

    def refresh(self, ctx: AuthContext) -> TokenExchange:
        return TokenExchange(self._flow(ctx), hookable=False)

    def _flow(self, ctx: AuthContext) -> TokenFlow:
        """A flow that sends nothing: it signs the token and returns it."""
        minted = mint_jwt(ctx, _auth(ctx.integration), field="auth")
        return TokenSet(access_token=minted.token, expires_at=minted.expires_at)
        yield  # a generator: the broker drives every token flow alike  # pragma: no cover
