"""``oauth2``: the authorization code (a redirect), client credentials and password grants of RFC 6749."""

from __future__ import annotations

import typing
from collections.abc import Mapping

import httpx
from pydantic import SecretStr

from authbridge.auth._authlib import create_pkce_pair, new_state
from authbridge.auth.base import AuthContext, Deferred, TokenSet
from authbridge.auth.discovery import CIMD_SUPPORTED, DiscoveryFlow, metadata_flow, protected_resource_flow
from authbridge.auth.form import ALGORITHMS, KV_HELP, TEMPLATE_HELP, Field, token_request_fields
from authbridge.auth.oauth2 import authorization_url, render_endpoint
from authbridge.auth.plugin import CREDENTIAL_INPUTS, AuthPlugin, Callback, Input, Redirect, TokenExchange
from authbridge.auth.registration import registration_request
from authbridge.auth.requests import RevokeRequest, revoke_requests, token_request
from authbridge.errors import CallbackError, ErrorItem, RefreshUnavailableError, SpecError
from authbridge.spec import Integration, OAuth2Auth
from authbridge.spec.models import SCOPE_PARAMETER
from authbridge.spec.templating import render_url

__all__ = ["OAuth2Plugin"]

_CODE: typing.Final = "authorization_code"


_FIELDS = (
    Field(
        "oauth2.grant_type",
        "auth.grant_type",
        "Authorization Grant Type",
        "select",
        options=((_CODE, "Authorization Code"), ("client_credentials", "Client Credentials"), ("password", "Password")),
    ),
    Field(
        "oauth2.discovery",
        "auth.discovery",
        "Discovery (issuer or metadata URL)",
        "url",
        "Optional: endpoints left empty are read from the server's RFC 8414 / OpenID metadata.",
        templated=True,
    ),
    Field(
        "oauth2.authorization_url",
        "auth.authorization_url",
        "Authorization Endpoint",
        "url",
        TEMPLATE_HELP,
        grant=_CODE,
        templated=True,
    ),
    *token_request_fields("oauth2")[:2],
    Field("oauth2.revoke_url", "auth.revoke_url", "Revoke Token Endpoint", "url", "Optional.", templated=True),
    Field("oauth2.scopes", "auth.scopes", "OAuth Scope", "list", "Separated by spaces.", sep=" "),
    Field("oauth2.client_id", "auth.client_id", "Client ID", templated=True),
    Field("oauth2.client_secret", "auth.client_secret", "Client Secret", "secret"),
    Field(
        "oauth2.client_auth",
        "auth.client_auth",
        "Client authentication",
        "select",
        options=(
            ("header", "HTTP Basic header"),
            ("body", "request body"),
            ("both", "both"),
            ("client_secret_jwt", "signed JWT (client_secret_jwt)"),
            ("private_key_jwt", "JWT signed with a private key (private_key_jwt)"),
        ),
    ),
    Field(
        "oauth2.client_private_key",
        "auth.client_private_key",
        "Client private key (private_key_jwt)",
        "secret",
        "The PEM private key whose public key is registered with the provider. Write-only.",
        requires=("auth.client_auth", "private_key_jwt"),
    ),
    Field(
        "oauth2.client_key_id",
        "auth.client_key_id",
        "Client key ID (kid)",
        help="Optional: the id the provider knows the key by.",
        templated=True,
        requires=("auth.client_auth", "private_key_jwt"),
    ),
    Field(
        "oauth2.client_assertion_alg",
        "auth.client_assertion_alg",
        "Client assertion algorithm",
        "select",
        options=tuple(option for option in ALGORITHMS if not option[0].startswith("HS")),
        requires=("auth.client_auth", "private_key_jwt"),
    ),
    Field("oauth2.pkce", "auth.pkce", "Use PKCE (S256)", "checkbox", grant=_CODE),
    Field(
        "oauth2.refresh_token",
        "auth.refresh_token",
        "The provider issues refresh tokens",
        "checkbox",
        "Unchecked: re-authorize when the token expires.",
        grant=_CODE,
    ),
    Field("oauth2.authorize_params", "auth.authorize_params", "Authorization parameters", "kv", KV_HELP, grant=_CODE),
    Field(
        "oauth2.authorize_client_id_param",
        "auth.authorize_client_id_param",
        "Authorization URL: client parameter name",
        help="In the authorization URL; usually client_id.",
        grant=_CODE,
    ),
    Field(
        "oauth2.authorize_scope_param",
        "auth.authorize_scope_param",
        "Authorization URL: scope parameter name",
        help="In the authorization URL; usually scope.",
        grant=_CODE,
    ),
    Field(
        "oauth2.authorize_raw",
        "auth.authorize_raw",
        "Parameters sent unencoded",
        "list",
        "Names of authorization URL parameters sent without percent-encoding, separated by spaces.",
        grant=_CODE,
        sep=" ",
    ),
    Field(
        "oauth2.issuer",
        "auth.issuer",
        "Issuer",
        "url",
        "Optional: the callback's `iss` must match (RFC 9207).",
        grant=_CODE,
        templated=True,
    ),
    Field(
        "oauth2.callback.capture",
        "auth.callback.capture",
        "Callback fields to keep",
        "list",
        "Query parameters of the redirect kept as credential fields, e.g. realmId.",
        grant=_CODE,
    ),
    Field(
        "oauth2.callback.patterns",
        "auth.callback.patterns",
        "Patterns of kept fields",
        "kv",
        "One per line, as field: regular expression. Required for a kept field used in the token URL's host.",
        grant=_CODE,
    ),
    *token_request_fields("oauth2")[2:],
    Field("oauth2.scope_separator", "auth.scope_separator", "Scope separator", help="Usually a space."),
)


def _auth(spec: Integration) -> OAuth2Auth:
    auth = spec.auth
    if not isinstance(auth, OAuth2Auth):
        raise TypeError(f"integration {spec.key} is not an OAuth 2.0 integration")
    return auth


class OAuth2Plugin(AuthPlugin):
    """OAuth 2.0. The authorization code grant redirects; the others fetch a token at once and again to refresh."""

    type = "oauth2"
    label = "OAuth 2.0"
    model = OAuth2Auth
    form_title = "OAuth2 Configuration"
    form_fields = _FIELDS
    form_sections = ("token_response", "hooks", "token", "refresh")

    def inputs(self, spec: Integration) -> tuple[Input, ...]:
        auth = _auth(spec)
        if auth.grant_type == "password":
            return (CREDENTIAL_INPUTS["username"], CREDENTIAL_INPUTS["password"])
        sources = [*auth.token_params.values(), *auth.token_headers.values(), auth.token_url]
        return self._referenced_inputs(spec, sources)

    def redirects(self, spec: Integration) -> bool:
        return _auth(spec).grant_type == _CODE

    def style(self, spec: Integration) -> str:
        return f"oauth2 ({_auth(spec).grant_type})"

    def scopes(self, spec: Integration) -> list[str]:
        return list(_auth(spec).scopes)

    def client_app(self, spec: Integration) -> tuple[str | list[str] | None, str | None]:
        auth = _auth(spec)
        return auth.client_id, auth.client_secret.get_secret_value() if auth.client_secret is not None else None

    def refreshable(self, spec: Integration) -> bool:
        return True

    def token_warning(self, spec: Integration, tokens: TokenSet) -> str | None:
        """The provider sent no refresh token although the spec expects one: say what usually makes it send one."""
        auth = _auth(spec)
        if auth.grant_type != _CODE or not auth.refresh_token or tokens.refresh_token:
            return None
        return (
            "the provider returned no refresh token: the account needs the user again when the token expires. "
            "Providers usually issue one only when asked: add prompt=consent (Google also access_type=offline) "
            "to the authorization parameters, or the offline_access scope (OpenID Connect), then reconnect; "
            "or uncheck 'The provider issues refresh tokens'"
        )

    def error_hint(self, spec: Integration, error: str) -> tuple[str, str] | None:
        """The usual causes of the token endpoint's common refusals, and the field that fixes each."""
        if "invalid_client" in error or "unauthorized_client" in error:
            return (
                "The provider did not accept the client: check the client secret (and the client id), and the "
                "client authentication method the provider expects (HTTP Basic header or request body).",
                "oauth2.client_secret",
            )
        if "token endpoint" in error and " answered 404" in error:
            return ("The token endpoint URL answered 404: check the Access Token Endpoint.", "oauth2.token_url")
        if "invalid_scope" in error:
            return ("The provider refused a scope: check the OAuth Scope list.", "oauth2.scopes")
        if "redirect_uri" in error:
            return (
                "The provider refused the redirect URI: register the exact one shown on the integration form.",
                "redirect-uri",
            )
        return None

    def incomplete(self, spec: Integration) -> list[ErrorItem]:
        """A confidential client needs its secret; a public one sends its id in the body (and uses PKCE for codes)."""
        auth = _auth(spec)
        if auth.client_auth == "private_key_jwt":
            if auth.client_private_key is not None:
                return []
            return [ErrorItem("auth.client_private_key", "enter the private key that signs the client assertions")]
        if auth.client_registration != "none" and auth.client_id is None:
            return []  # the client (and its secret) come from the registration
        public = auth.client_auth == "body" and auth.grant_type != "client_credentials"
        if auth.client_secret is not None or (public and (auth.pkce or auth.grant_type != _CODE)):
            return []
        message = (
            "enter the client secret: without it the provider answers invalid_client. "
            "A public client (no secret) uses 'request body' client authentication"
            + (" and PKCE" if auth.grant_type == _CODE else "")
            + (" and cannot use the client credentials grant" if auth.grant_type == "client_credentials" else "")
            + "."
        )
        return [ErrorItem("auth.client_secret", message)]

    def revokes(self, spec: Integration) -> bool:
        auth = _auth(spec)
        return bool(auth.revoke_url or auth.discovery or auth.protected_resource)

    def discovery(self, ctx: AuthContext) -> tuple[str, DiscoveryFlow] | None:
        auth = ctx.oauth2
        if auth.protected_resource is not None:
            resource = render_endpoint(ctx, auth.protected_resource, field="auth.protected_resource")
            return f"resource {resource}", protected_resource_flow(resource, allow_http=ctx.allow_http)
        if auth.discovery is None:
            return None
        source = render_endpoint(ctx, auth.discovery, field="auth.discovery")
        return source, metadata_flow(source, allow_http=ctx.allow_http)

    def registration(
        self, ctx: AuthContext, discovered: Mapping[str, typing.Any]
    ) -> tuple[str, httpx.Request] | str | None:
        """A configured client id wins; ``auto`` takes the client ID metadata document (AuthBridge's URL as
        the client id) when the server supports it and AuthBridge serves one; else dynamic registration."""
        auth = ctx.oauth2
        if auth.client_registration == "none" or auth.client_id is not None:
            return None
        if auth.client_registration == "auto" and discovered.get(CIMD_SUPPORTED) is True and ctx.client_metadata_url:
            return ctx.client_metadata_url
        if auth.registration_url is None:
            message = "the server's metadata names no registration endpoint; set one"
            if auth.client_registration == "auto":
                why = (
                    "takes client ID metadata documents only from an https AuthBridge (AUTHBRIDGE_PUBLIC_URL)"
                    if discovered.get(CIMD_SUPPORTED) is True
                    else "takes no client ID metadata documents"
                )
                message = (
                    f"the authorization server offers no dynamic client registration and {why}: register a client "
                    "with it and set auth.client_id (in an integration of your own with this auth block)"
                )
            raise SpecError([ErrorItem("auth.registration_url", message)], source=ctx.integration.key)
        endpoint = render_endpoint(ctx, auth.registration_url, field="auth.registration_url")
        if ctx.redirect_uri is None:
            raise ValueError("the context needs the redirect URI to register a client")
        return endpoint, registration_request(endpoint, redirect_uri=ctx.redirect_uri, spec=ctx.integration)

    def with_client(self, spec: Integration, client_id: str, client_secret: str | None) -> Integration:
        auth = typing.cast(OAuth2Auth, spec.auth)
        update: dict[str, typing.Any] = {"client_id": client_id.replace("{", "{{").replace("}", "}}")}
        if client_secret is not None:
            update["client_secret"] = SecretStr(client_secret)
        else:
            update["client_auth"] = "body"  # a public client: its id in the body, no secret (RFC 6749 §2.3.1)
        return spec.model_copy(update={"auth": auth.model_copy(update=update)})

    def with_discovered(self, spec: Integration, fields: Mapping[str, typing.Any]) -> Integration:
        auth = typing.cast(OAuth2Auth, spec.auth)
        update = {
            name: value
            for name, value in fields.items()
            if name in OAuth2Auth.model_fields and getattr(auth, name) in (None, [])
        }
        return spec.model_copy(update={"auth": auth.model_copy(update=update)}) if update else spec

    def with_scopes(
        self, spec: Integration, parameters: Mapping[str, str], add: typing.Sequence[str] = ()
    ) -> Integration:
        auth = _auth(spec)
        scopes: list[str] = []
        for scope in auth.scopes:
            named = SCOPE_PARAMETER.fullmatch(scope)
            for one in parameters.get(scope[1:-1], "").split() if named else [scope]:
                if one not in scopes:
                    scopes.append(one)
        scopes.extend(scope for scope in dict.fromkeys(add) if scope not in scopes)
        if scopes == auth.scopes:
            return spec
        return spec.model_copy(update={"auth": auth.model_copy(update={"scopes": scopes})})

    def begin(self, ctx: AuthContext) -> Redirect | TokenExchange:
        """Authorization code: the URL to send the browser to (state and PKCE verifier to keep); else the grant."""
        auth = _auth(ctx.integration)
        if auth.grant_type == _CODE:
            state = new_state()
            verifier, challenge = create_pkce_pair() if auth.pkce else (None, None)
            return Redirect(authorization_url(ctx, state=state, code_challenge=challenge), state, verifier)
        grant = auth.grant_type
        return TokenExchange(self._one_request(ctx, lambda: token_request(ctx, grant_type=grant)))

    def callback(self, ctx: AuthContext, query: Mapping[str, str], code_verifier: str | None) -> Callback:
        """Check the redirect's issuer (RFC 9207) and code; CallbackError says what is wrong."""
        auth = _auth(ctx.integration)
        if auth.issuer is not None:
            # RFC 9207: an integration that names its issuer expects `iss`; a response without it could
            # come from another authorization server (mix-up attack), so it is refused like a wrong one.
            expected = render_url(auth.issuer, ctx.values(), field="auth.issuer", allow_http=ctx.allow_http)
            if "iss" not in query:
                raise CallbackError("the authorization response carried no issuer (RFC 9207 iss expected)")
            # RFC 9207 §2.4: simple string comparison; "https://a.example/" is another issuer than "https://a.example".
            if query["iss"] != expected:
                raise CallbackError("the authorization response came from an unexpected issuer (RFC 9207 iss mismatch)")
        code = query.get("code")
        if not code:
            raise CallbackError("the provider's redirect carried no authorization code")
        return Callback(code, code_verifier, dict(query))

    def finish(self, ctx: AuthContext, callback: Callback) -> TokenExchange:
        code, verifier = callback.code, callback.code_verifier
        flow = self._one_request(
            ctx, lambda: token_request(ctx, grant_type=_CODE, code=code, code_verifier=verifier), code, verifier
        )
        return TokenExchange(flow, code=code, code_verifier=verifier, query=callback.query)

    def refresh(self, ctx: AuthContext) -> TokenExchange:
        """The refresh_token grant (or ``refresh.request``) for the authorization code; the grant again otherwise."""
        auth = _auth(ctx.integration)
        if auth.grant_type != _CODE:
            grant = auth.grant_type
            return TokenExchange(self._one_request(ctx, lambda: token_request(ctx, grant_type=grant)))
        if not auth.refresh_token or not ctx.refresh_token:
            key = ctx.integration.key
            raise RefreshUnavailableError(
                f"{key}: the token cannot be refreshed without the user (no refresh token): reconnect",
                integration=key,
            )
        flow = self._one_request(ctx, lambda: token_request(ctx, grant_type="refresh_token"))
        return TokenExchange(flow, hookable=False)

    def revoke(self, ctx: AuthContext) -> list[RevokeRequest]:
        return revoke_requests(ctx)

    def read_token(
        self,
        ctx: AuthContext,
        response: httpx.Response,
        *,
        endpoint: Deferred[str],
        secrets: Deferred[tuple[str, ...]],
    ) -> TokenSet:
        return self._parse(ctx, response, endpoint, secrets)
