"""OAuth 2.0: the authorization URL the browser is sent to, and the pieces the token requests share."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

from authbridge.auth.base import AuthContext
from authbridge.errors import ErrorItem, SpecError, UnsafeValueError
from authbridge.spec import Integration, OAuth2Auth
from authbridge.spec.models import RAW_SAFE_CHARS
from authbridge.spec.templating import TemplateSource, references_of, render_text, render_url

__all__ = ["authorization_url", "render_endpoint", "scope_string", "whole_url_names"]


def scope_string(auth: OAuth2Auth) -> str | None:
    """The integration's scopes joined by its ``scope_separator``; None when it declares none."""
    return auth.scope_separator.join(auth.scopes) if auth.scopes else None


def whole_url_names(integration: Integration, *, credentials: bool = False) -> frozenset[str]:
    """The references that may fill a whole URL: ``format: url`` parameters, and credential fields if allowed."""
    names = {p.name for p in integration.parameters if p.format == "url"}
    return frozenset(names | {"credentials.*"} if credentials else names)


def render_endpoint(ctx: AuthContext, source: TemplateSource, *, field: str, credentials: bool = False) -> str:
    """Render an endpoint URL of the integration with the connection's values and the server's http rule.

    Args:
        ctx: the connection's values.
        source: the URL template (or alternatives).
        field: the spec field path, for error messages.
        credentials: whether ``{credentials.x}`` may supply the whole URL (revocation and refresh
            requests, which run once credentials exist).

    Raises:
        UnsafeValueError: a value would move the URL's scheme, host or port.
        TemplateError: the template cannot be rendered.
    """
    return render_url(
        source,
        ctx.values(),
        field=field,
        whole_url_names=whole_url_names(ctx.integration, credentials=credentials),
        allow_http=ctx.allow_http,
        clock=ctx.clock,
    )


def _left_out(ctx: AuthContext, source: TemplateSource, values: Mapping[str, str | None]) -> bool:
    """Whether an ``authorize_params`` entry is left out: no alternative renders, for want of optional parameters only.

    ``login_hint: "{loginHint}"`` with an optional ``loginHint`` is sent when the connection gives one.
    """
    alternatives = [source] if isinstance(source, str) else list(source)
    missing: set[str] = set()
    for item in alternatives:
        absent = {name for name in references_of(item) if not values.get(name)}
        if not absent:
            return False
        missing |= absent
    optional = {p.name for p in ctx.integration.parameters if not p.required}
    return missing <= optional


def _pair(name: str, value: str, *, raw: bool, field: str) -> str:
    """``name=value``, the value form-encoded (as Authlib did) unless the spec sends it raw; a raw value is checked."""
    if raw:
        bad = sorted(set(value) - RAW_SAFE_CHARS)
        if bad:
            raise UnsafeValueError(
                f"{field}: the value of {name} holds {''.join(bad)!r}, which cannot be sent unencoded "
                "(it would end the value or change the URL)"
            )
        return f"{quote_plus(name, safe='')}={value}"
    return f"{quote_plus(name, safe='')}={quote_plus(value, safe='')}"


def authorization_url(ctx: AuthContext, *, state: str, code_challenge: str | None) -> str:
    """Return the URL that starts the authorization code flow (RFC 6749 §4.1.1, RFC 7636 §4.3).

    The query carries ``response_type=code``, the client id, ``redirect_uri``, the scopes (left out
    when the integration declares none), ``state``, the S256 ``code_challenge`` when one is given,
    and every rendered ``authorize_params`` entry (one whose only missing references are optional
    parameters is left out). Query parameters already in the URL template are kept. The standard
    parameters win over ``authorize_params`` entries of the same name, except that an
    ``authorize_params`` scope is used when the integration declares no scopes.

    The spec shapes it: ``authorize_client_id_param`` and ``authorize_scope_param`` rename the client
    id and scope parameters; ``authorize_raw`` names parameters sent without percent-encoding, whose
    values may hold only :data:`~authbridge.spec.models.RAW_SAFE_CHARS`. Every other value is
    form-encoded, so no value can add a parameter (``&``) or a fragment (``#``).

    ```
    verifier, challenge = create_pkce_pair()
    url = authorization_url(ctx, state=new_state(), code_challenge=challenge)
    ```

    Args:
        ctx: the connection; its ``redirect_uri`` is the callback URL.
        state: the single-use value the callback must bring back.
        code_challenge: the PKCE S256 challenge, or None when the integration sets ``pkce: false``.

    Raises:
        SpecError: the integration has no ``authorization_url`` or ``client_id``.
        UnsafeValueError: a parameter value would move the URL's scheme, host or port, or a raw
            value holds a character that must be encoded.
        TemplateError: a template cannot be rendered.
    """
    auth = ctx.oauth2
    missing = [name for name in ("authorization_url", "client_id") if getattr(auth, name) is None]
    if missing:
        problems = [ErrorItem(f"auth.{name}", "is required to start an authorization") for name in missing]
        raise SpecError(problems, source=ctx.integration.key)
    assert auth.authorization_url is not None  # narrowed by the check above
    url = render_endpoint(ctx, auth.authorization_url, field="auth.authorization_url")
    values = ctx.values()
    extra = {
        name: render_text(source, values, field=f"auth.authorize_params.{name}", clock=ctx.clock)
        for name, source in auth.authorize_params.items()
        if not _left_out(ctx, source, values)
    }
    if auth.resource is not None:  # RFC 8707: the API the token is for
        extra["resource"] = render_endpoint(ctx, auth.resource, field="auth.resource")
    client_param, scope_param = auth.authorize_client_id_param, auth.authorize_scope_param
    standard: list[tuple[str, str | None]] = [
        ("response_type", "code"),
        (client_param, values["client_id"] or ""),
        ("redirect_uri", ctx.redirect_uri),
        (scope_param, scope_string(auth) or extra.get(scope_param)),
        ("state", state),
    ]
    if code_challenge is not None:
        extra["code_challenge"] = code_challenge
        extra["code_challenge_method"] = "S256"
    own = {name for name, _ in standard}
    pairs = [(name, value) for name, value in standard if value]
    pairs += [(name, value) for name, value in extra.items() if name not in own]
    parts = urlsplit(url)
    sent = {name for name, _ in pairs}
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in sent]
    raw = set(auth.authorize_raw)
    query = [_pair(k, v, raw=False, field="auth.authorization_url") for k, v in kept]
    query += [_pair(k, v, raw=k in raw, field="auth.authorize_raw") for k, v in pairs]
    return urlunsplit(parts._replace(query="&".join(query)))
