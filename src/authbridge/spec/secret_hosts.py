"""Who chooses the host that receives the client secret: the spec, never a connection's parameter values.

The integration's client secret goes to ``auth.token_url``, ``refresh.request.url`` and
``auth.revoke_url``. When such a URL takes its **whole host** from something a user types (a
parameter, a field captured from the OAuth redirect, the ``username`` input) the user could send
the secret to a host of their choosing. That host must then be bounded by the spec:

- by the URL itself: the host ends in a fixed domain of at least two labels after the last
  placeholder (``https://{tenant}.acme.example``: any value stays under acme.example);
- or by every user-filled reference in the host being a parameter with ``enum`` (a fixed list) or
  ``hosts`` (an allow-list of host names and ``*.domain`` suffixes, checked on every value).

A ``pattern`` alone is not accepted: a regular expression cannot be shown to pin a host (``.*``,
``[a-z.]+`` and unanchored alternatives all let ``attacker.example`` through), and one that cannot
match a dot still admits single-label names such as ``localhost``. Credential fields from the token
response (``{credentials.instance_url}``) are chosen by the provider the secret already went to.
"""

from __future__ import annotations

import typing

from authbridge.errors import ErrorItem, TemplateError
from authbridge.spec.models import Integration, OAuth1Auth, OAuth2Auth
from authbridge.spec.templating import Template

__all__ = ["client_secret_fields", "host_allowed", "secret_host_errors"]

Part = tuple[bool, str]  # (is a placeholder, its expression or the literal text)


def _host_parts(template: Template) -> list[Part] | None:
    """The parts of the URL's host (no user info, no port); None when the whole URL is a placeholder."""
    parts: list[Part] = [(False, p) if isinstance(p, str) else (True, p.expr) for p in template._parts]
    if parts and parts[0][0]:
        return None
    items: list[Part] = []  # literal characters one by one, placeholders whole
    seen = ""
    state = "scheme"
    for is_placeholder, text in parts:
        if is_placeholder:
            if state == "authority":
                items.append((True, text))
            continue
        for char in text:
            if state == "scheme":
                seen += char
                state = "authority" if seen.endswith("://") else state
            elif state == "authority":
                if char in "/?#":
                    state = "done"
                    break
                items.append((False, char))
        if state == "done":
            break
    at = max((i for i, item in enumerate(items) if item == (False, "@")), default=-1)
    host: list[Part] = []
    bracket = False
    for item in items[at + 1 :]:
        if item == (False, "["):
            bracket = True
        elif item == (False, "]"):
            bracket = False
        elif item == (False, ":") and not bracket:
            break
        host.append(item)
    return host


def _pinned(host: list[Part]) -> bool:
    """Whether the literal text after the host's last placeholder is a domain of two or more labels."""
    last = max((i for i, (is_placeholder, _) in enumerate(host) if is_placeholder), default=-1)
    if last < 0:
        return True
    tail = "".join(text for _, text in host[last + 1 :]).removesuffix(".")
    labels = tail.split(".")
    return tail.startswith(".") and len(labels) >= 3 and all(labels[1:])


def _user_chosen(spec: Integration, name: str) -> bool:
    """Whether a user, not the spec or the provider, decides the value of this reference."""
    if name.startswith("credentials."):
        auth = spec.auth
        return isinstance(auth, OAuth2Auth) and name.removeprefix("credentials.") in auth.callback.capture
    param = spec.parameter(name)
    if param is not None:
        return param.enum is None and param.hosts is None
    return name in {"username", "password", "token", "refresh_token"}


def _owns_client_secret(spec: Integration) -> bool:
    """Whether the spec holds a client secret of its own (not ``{param}``, a connection's value)."""
    secret = spec.client_secret
    if secret is None:
        return False
    if secret.startswith("{") and secret.endswith("}"):
        param = spec.parameter(secret[1:-1])
        return param is not None and param.default is not None
    return True


def _problem(spec: Integration, source: str) -> str | None:
    template = Template.parse(source)
    host = _host_parts(template)
    if host is None:  # the whole URL is a placeholder
        chosen = sorted(ref for ref in template.references if _user_chosen(spec, ref))
        if not chosen:
            return None
        whole = chosen[0]
        return (
            f"receives the client secret, and {{{whole}}} supplies the whole URL: list the allowed hosts "
            f"of {{{whole}}} in hosts: [...] or its values in enum (a pattern cannot pin a host)"
        )
    if _pinned(host):
        return None
    names = sorted({ref for is_ph, expr in host if is_ph for ref in Template.parse("{" + expr + "}").references})
    free = [name for name in names if _user_chosen(spec, name)]
    if not free:
        return None
    shown = ", ".join(f"{{{name}}}" for name in free)
    return (
        f"receives the client secret, and {shown} decides its host: list the allowed hosts in hosts: [...] "
        "or the values in enum (a pattern cannot pin a host), or fix the domain after the placeholder "
        "(https://{tenant}.acme.example)"
    )


def client_secret_fields(spec: Integration) -> dict[str, str | list[str] | None]:
    """The URL fields whose hosts receive the client secret (OAuth 1.0a: what it signs, or carries with PLAINTEXT)."""
    auth = spec.auth
    if isinstance(auth, OAuth1Auth):
        fields = {"auth.request_token_url": auth.request_token_url, "auth.access_token_url": auth.access_token_url}
        if auth.signature_method == "PLAINTEXT":  # every API request carries the secret itself
            fields["request.base_url"] = spec.request.base_url
        return fields
    auth = typing.cast(OAuth2Auth, auth)  # only OAuth 2.0 and 1.0a specs hold a client secret
    refresh = spec.refresh.request
    return {
        "auth.token_url": auth.token_url,
        "refresh.request.url": refresh.url if refresh else None,
        "auth.revoke_url": auth.revoke_url,
    }


def secret_host_errors(spec: Integration) -> list[ErrorItem]:
    """One error per URL receiving the spec's own client secret whose host a user could choose."""
    if not _owns_client_secret(spec):
        return []
    fields = client_secret_fields(spec)
    errors: list[ErrorItem] = []
    for field, source in fields.items():
        for item in [source] if isinstance(source, str) else source or []:
            try:
                problem = _problem(spec, item)
            except TemplateError:
                continue  # reported by the template checks
            if problem is not None:
                errors.append(ErrorItem(field, problem))
                break
    return errors


def host_allowed(host: str, allowed: typing.Iterable[str]) -> bool:
    """Whether ``host`` is one of ``allowed``: ``a.example`` exactly, ``*.a.example`` any name under it."""
    host = host.lower().removesuffix(".")
    for entry in allowed:
        if entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1:
            return True
        if host == entry:
            return True
    return False
