"""``custom_token``: a token fetched from a custom endpoint with templated parameters (Airkit "Custom Token")."""

from __future__ import annotations

import httpx

from authbridge.auth.base import AuthContext, Deferred, TokenSet
from authbridge.auth.form import Field, token_request_fields
from authbridge.auth.plugin import AuthPlugin, Input, TokenExchange
from authbridge.auth.requests import token_request
from authbridge.auth.steps import step_flow
from authbridge.spec import CustomTokenAuth, Integration

__all__ = ["CustomTokenPlugin"]


def _auth(spec: Integration) -> CustomTokenAuth:
    auth = spec.auth
    if not isinstance(auth, CustomTokenAuth):
        raise TypeError(f"integration {spec.key} is not a custom token integration")
    return auth


class CustomTokenPlugin(AuthPlugin):
    """One token request (or ``steps``), run again to refresh; the answer's lifetime defaults to ``ttl``."""

    type = "custom_token"
    label = "Custom Token"
    model = CustomTokenAuth
    form_title = "Custom Token"
    form_intro = "A token fetched from your own endpoint with the parameters below."
    form_fields = (
        *token_request_fields("custom_token"),
        Field("custom_token.ttl", "auth.ttl", "Token lifetime", "duration", "When the answer gives none."),
        Field(
            "custom_token.steps",
            "auth.steps",
            "Token steps",
            "json_list",
            "Optional: requests sent in order instead of the one above, as a JSON list of "
            '{"name", "url", "method", "body", "headers", "params", "capture", "jwt"}; see docs/spec.md.',
        ),
    )
    form_sections = ("token_response", "hooks", "token", "refresh")

    def inputs(self, spec: Integration) -> tuple[Input, ...]:
        auth = _auth(spec)
        sources = [*auth.token_params.values(), *auth.token_headers.values(), auth.token_url]
        for step in auth.steps:
            sources += [*step.params.values(), *step.headers.values(), step.url]
        return self._referenced_inputs(spec, sources)

    def refreshable(self, spec: Integration) -> bool:
        return True

    def _exchange(self, ctx: AuthContext) -> TokenExchange:
        if _auth(ctx.integration).steps:
            return TokenExchange(
                step_flow(
                    ctx, lambda c, r, endpoint, secrets: self.read_token(c, r, endpoint=endpoint, secrets=secrets)
                )
            )
        return TokenExchange(self._one_request(ctx, lambda: token_request(ctx, grant_type=None)))

    def begin(self, ctx: AuthContext) -> TokenExchange:
        return self._exchange(ctx)

    def refresh(self, ctx: AuthContext) -> TokenExchange:
        return self._exchange(ctx)

    def read_token(
        self,
        ctx: AuthContext,
        response: httpx.Response,
        *,
        endpoint: Deferred[str],
        secrets: Deferred[tuple[str, ...]],
    ) -> TokenSet:
        return self._parse(ctx, response, endpoint, secrets, default_ttl=_auth(ctx.integration).ttl)
