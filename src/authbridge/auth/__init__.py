"""Sans-IO auth flows: build the requests of each auth type and parse the answers; nothing is sent here."""

from __future__ import annotations

from authbridge.auth._authlib import create_pkce_pair, new_state
from authbridge.auth.base import AuthContext, TokenSet
from authbridge.auth.oauth2 import authorization_url
from authbridge.auth.plugin import (
    AuthPlugin,
    Callback,
    Entered,
    Input,
    Redirect,
    RedirectExchange,
    TokenExchange,
    TokenFlow,
)
from authbridge.auth.plugins import PLUGINS, api_request, credential_headers_and_query, plugin_for
from authbridge.auth.requests import GrantType, RevokeRequest, revocation_problem, revoke_requests, token_request
from authbridge.auth.tokens import MAX_BODY_BYTES, callback_fields, parse_token_response

__all__ = [
    "MAX_BODY_BYTES",
    "PLUGINS",
    "AuthContext",
    "AuthPlugin",
    "Callback",
    "Entered",
    "Input",
    "Redirect",
    "RedirectExchange",
    "TokenExchange",
    "TokenFlow",
    "GrantType",
    "RevokeRequest",
    "TokenSet",
    "api_request",
    "authorization_url",
    "callback_fields",
    "credential_headers_and_query",
    "create_pkce_pair",
    "new_state",
    "parse_token_response",
    "plugin_for",
    "revocation_problem",
    "revoke_requests",
    "token_request",
]
