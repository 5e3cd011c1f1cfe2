"""Where an integration sends its secrets, and whether an update moves them to a new place.

Two kinds of secrets leave AuthBridge:

- the integration's **client secret**, sent with every token, refresh and revocation request
  (``auth.token_url``, ``refresh.request.url``, ``auth.revoke_url``);
- the **connection secrets** of its connected accounts: refresh tokens (token or refresh URL),
  access and refresh tokens (revocation URL), passwords and secret parameters (token request),
  the access token and secret headers or query values (``request.base_url``).

A destination is the *origin* of one such URL template: scheme, host and port with placeholders left
as written (``https://{tenant}.acme.example``), the default port dropped, letters lower-cased. An
update *moves* a secret when one of the new spec's destinations for it is not among the old spec's
destinations of the same kind. A placeholder in the origin is part of the comparison together
with what bounds it: widening a host parameter's ``enum`` or ``hosts`` (or changing its ``pattern``,
``format`` or ``default``) moves the destination as much as rewriting the host does, while
narrowing it (a subset of the enum or hosts, an added constraint) does not. A change of path only
(same origin) is not a move: the same host already received the secret.

```
problems = move_problems(old, new, client_secret_kept=True, connections=3)
```
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable, Iterator

from authbridge.errors import ErrorItem
from authbridge.spec.models import CustomTokenAuth, Integration, JwtBearerAuth, OAuth1Auth, OAuth2Auth
from authbridge.spec.templating import Template, TemplateSource, references_of

__all__ = [
    "Destination",
    "client_secret_destinations",
    "connection_secret_destinations",
    "move_problems",
    "origin_of",
]

_DEFAULT_PORTS = {"https": ":443", "http": ":80"}
#: Inputs a user types when connecting; they are connection secrets wherever a token request uses them.
_USER_INPUTS = frozenset({"username", "password"})


Bound = dict[str, typing.Any]


class Destination(typing.NamedTuple):
    """One place a secret goes: the spec field, the origin (as written), what bounds each name in it."""

    field: str
    origin: str
    bounds: dict[str, Bound]


def _placeholder_parts(template: Template) -> Iterator[tuple[bool, str]]:
    """The template's parts in order: (True, expression) for a placeholder, (False, text) for literal text."""
    for part in template._parts:
        if isinstance(part, str):
            yield False, part
        else:
            yield True, part.expr


def origin_of(source: str) -> tuple[str, frozenset[str]]:
    """The origin of one URL template (scheme, host and port, as written) and the names used in it.

    A template that starts with a placeholder (a whole URL from a ``format: url`` parameter or a
    credential field) has that placeholder as its origin.

    ```
    origin_of("HTTPS://{tenant}.Acme.example:443/oauth/token")
    # ('https://{tenant}.acme.example', frozenset({'tenant'}))
    ```

    Raises:
        TemplateError: the template cannot be parsed.
    """
    template = Template.parse(source)
    pieces: list[str] = []
    names: set[str] = set()
    parts = list(_placeholder_parts(template))
    if parts and parts[0][0]:
        expr = parts[0][1]
        return "{" + expr + "}", frozenset(Template.parse("{" + expr + "}").references)
    state = "scheme"
    for is_placeholder, text in parts:
        if is_placeholder:
            pieces.append("{" + text + "}")
            names.update(Template.parse("{" + text + "}").references)
            continue
        for char in text:
            if state == "authority" and char in "/?#":
                state = "done"
                break
            pieces.append(char.lower())
            if state == "scheme" and "".join(pieces).endswith("://"):
                state = "authority"
        if state == "done":
            break
    origin = "".join(pieces)
    scheme = origin.partition("://")[0]
    default = _DEFAULT_PORTS.get(scheme)
    if default and origin.endswith(default):
        origin = origin.removesuffix(default)
    return origin, frozenset(names)


def _bound(spec: Integration, name: str) -> Bound:
    """What limits the values of one reference (a parameter's constraints, a credential field's source)."""
    param = spec.parameter(name)
    if param is not None:
        return param.model_dump(include={"enum", "pattern", "format", "hosts", "default"}, mode="json")
    if name.startswith("credentials."):
        captured = isinstance(spec.auth, OAuth2Auth) and name.removeprefix("credentials.") in spec.auth.callback.capture
        return {"source": "callback" if captured else "token response"}
    if name == "client_id" and isinstance(spec.auth, OAuth2Auth):
        client_id = spec.auth.client_id
        refs = sorted(references_of(client_id or ""))
        return {"client_id": json.dumps(client_id), "refs": json.dumps([_bound(spec, n) for n in refs])}
    return {"name": name}


def _covered(entry: str, old_hosts: list[str]) -> bool:
    """Whether every host the allow-list entry admits is admitted by ``old_hosts``."""
    if not entry.startswith("*."):
        return any(entry == old or (old.startswith("*.") and entry.endswith(old[1:])) for old in old_hosts)
    return any(old.startswith("*.") and (entry == old or entry.endswith(old[1:])) for old in old_hosts)


def _narrower(new: Bound, old: Bound) -> bool:
    """Whether every value ``new`` admits was admitted by ``old`` (conservatively: False when unsure)."""
    if new == old:
        return True
    if set(new) != {"enum", "pattern", "format", "hosts", "default"} or set(old) != set(new):
        return False
    if old["enum"] is not None and (new["enum"] is None or not set(new["enum"]) <= set(old["enum"])):
        return False
    if old["hosts"] is not None and (new["hosts"] is None or not all(_covered(h, old["hosts"]) for h in new["hosts"])):
        return False
    return all(old[key] is None or new[key] == old[key] for key in ("pattern", "format")) and new["default"] in (
        None,
        old["default"],
    )


def _destinations(spec: Integration, field: str, source: TemplateSource | None) -> list[Destination]:
    if source is None:
        return []
    found = []
    for item in [source] if isinstance(source, str) else source:
        origin, names = origin_of(item)
        found.append(Destination(field, origin, {name: _bound(spec, name) for name in sorted(names)}))
    return found


def client_secret_destinations(spec: Integration) -> list[Destination]:
    """Where the integration's client secret goes: its token, refresh and revocation URLs (OAuth 2.0).

    OAuth 1.0a: the request and access token URLs, and the API itself with PLAINTEXT.
    """
    auth = spec.auth
    if isinstance(auth, OAuth1Auth):
        found = [
            *_destinations(spec, "auth.request_token_url", auth.request_token_url),
            *_destinations(spec, "auth.access_token_url", auth.access_token_url),
        ]
        if auth.signature_method == "PLAINTEXT":
            found += _destinations(spec, "request.base_url", spec.request.base_url)
        return found
    if not isinstance(auth, OAuth2Auth):
        return []
    refresh = spec.refresh.request
    return [
        *_destinations(spec, "auth.token_url", auth.token_url),
        *_destinations(spec, "refresh.request.url", refresh.url if refresh else None),
        *_destinations(spec, "auth.revoke_url", auth.revoke_url),
    ]


def _refs(sources: Iterable[TemplateSource]) -> frozenset[str]:
    return frozenset(name for source in sources for name in references_of(source))


def _token_request_carries_connection_secrets(spec: Integration, auth: OAuth2Auth | CustomTokenAuth) -> bool:
    """Whether a token request sends something of the connection's: a refresh token, a password, a secret value."""
    if isinstance(auth, OAuth2Auth) and auth.grant_type != "client_credentials":
        return True  # refresh tokens (and the password grant's password) go to the token URL
    secret = {p.name for p in spec.parameters if p.secret} | _USER_INPUTS
    templates = [v for v in auth.token_params.values() if isinstance(v, str | list)]  # booleans, numbers: literal
    used = _refs([*templates, *auth.token_headers.values()])
    client_secret = spec.client_secret or ""
    if isinstance(auth, OAuth2Auth) and client_secret.startswith("{") and client_secret.endswith("}"):
        used |= {client_secret[1:-1]}
    return bool(used & secret)


def connection_secret_destinations(spec: Integration) -> list[Destination]:
    """Where the secrets of the integration's connected accounts go (see the module docstring)."""
    auth = spec.auth
    found: list[Destination] = []
    if isinstance(auth, OAuth2Auth | CustomTokenAuth) and _token_request_carries_connection_secrets(spec, auth):
        found += _destinations(spec, "auth.token_url", auth.token_url)
    if isinstance(auth, JwtBearerAuth):  # the assertion, signed with the account's key
        found += _destinations(spec, "auth.token_url", auth.token_url)
    if isinstance(auth, OAuth2Auth):
        refresh = spec.refresh.request
        found += _destinations(spec, "refresh.request.url", refresh.url if refresh else None)
        found += _destinations(spec, "auth.revoke_url", auth.revoke_url)
    secret_params = {p.name for p in spec.parameters if p.secret}
    placed = _refs([*spec.request.headers.values(), *spec.request.query.values()])
    if auth.type != "none" or placed & secret_params:
        found += _destinations(spec, "request.base_url", spec.request.base_url)
    return found


def _known(destination: Destination, old: Iterable[Destination]) -> bool:
    """Whether an old destination has the same origin and admitted at least every value this one admits."""
    return any(
        o.origin == destination.origin
        and o.bounds.keys() == destination.bounds.keys()
        and all(_narrower(bound, o.bounds[name]) for name, bound in destination.bounds.items())
        for o in old
    )


def _moved(old: Iterable[Destination], new: Iterable[Destination]) -> list[Destination]:
    """The new destinations that are not old ones, one per field and origin."""
    before = list(old)
    moved: dict[tuple[str, str], Destination] = {}
    for destination in new:
        if not _known(destination, before):
            moved.setdefault((destination.field, destination.origin), destination)
    return list(moved.values())


def move_problems(old: Integration, new: Integration, *, client_secret_kept: bool, connections: int) -> list[ErrorItem]:
    """Why replacing ``old`` by ``new`` would send a stored secret somewhere it did not go before.

    Args:
        old: the stored spec.
        new: the spec about to replace it.
        client_secret_kept: whether ``new`` keeps the stored client secret (it was given as ``********``).
            A client secret given again may go anywhere: whoever gave it knows it.
        connections: how many connected accounts the integration has whose secrets must not move
            (0 when the operator confirmed the move).
    """
    problems: list[ErrorItem] = []
    if client_secret_kept:
        for d in _moved(client_secret_destinations(old), client_secret_destinations(new)):
            problems.append(
                ErrorItem(
                    d.field,
                    f"would send the stored client secret to {d.origin}, where it did not go before: "
                    "give auth.client_secret again (the secret itself, not ********) to make this change",
                )
            )
    if connections:
        accounts = f"{connections} connected account{'s' if connections != 1 else ''}"
        for d in _moved(connection_secret_destinations(old), connection_secret_destinations(new)):
            problems.append(
                ErrorItem(
                    d.field,
                    f"would send the tokens and secret parameters of {accounts} to {d.origin}, where they did "
                    "not go before: keep the host, delete those accounts first, or make the change on the "
                    "server with `authbridge integrations apply --move-secrets`",
                )
            )
    return problems
