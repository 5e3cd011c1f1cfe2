"""Hooks: Python functions named ``module:function`` in a spec, for what the declarative fields can't say.

They are Integration.app's methods of the same purpose. A hook is loaded only from a module the
server allows (``AUTHBRIDGE_HOOK_MODULES``), never from the spec's own text, and may be sync or async.

```python
# myhooks/crm.py, with AUTHBRIDGE_HOOK_MODULES=myhooks
async def get_token_data(ctx: HookContext) -> dict[str, object]:
    response = await ctx.http.post(ctx.parameters["tokenUrl"], data={"code": ctx.code})
    return response.json()            # then read per the spec's token_response block
```

- ``get_token_data(ctx)``: replaces the token request; ``ctx.code``, ``code_verifier``,
  ``redirect_uri`` and ``query`` are set on the OAuth callback. Returns the token response as a
  dict, read per the spec's ``token_response`` block.
- ``credentials_from_token_response(ctx, token_response)``: returns the credentials:
  ``access_token`` and optionally ``refresh_token``, ``expires_in`` (seconds) or ``expires_at``
  (unix seconds or a datetime), ``token_type``, ``scope``, and any extra field.
- ``refresh_credentials(ctx)``: ``ctx.credentials`` holds the current ones; returns new
  credentials, merged over the current ones.
- ``test(ctx)``: truthy when the connection works; a string is shown as the detail.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import httpx

from authbridge.auth.base import TokenSet
from authbridge.auth.tokens import check_token_value
from authbridge.errors import ErrorItem, SpecError, UpstreamError

__all__ = ["HookContext", "call_hook", "load_hook", "token_set_from_credentials"]

_STANDARD = {"access_token", "refresh_token", "expires_in", "expires_at", "token_type", "scope", "scopes"}


@dataclasses.dataclass(frozen=True)
class HookContext:
    """What a hook sees. ``http`` is AuthBridge's outbound client (SSRF guard included)."""

    integration: str
    parameters: Mapping[str, str] = dataclasses.field(repr=False)
    inputs: Mapping[str, str] = dataclasses.field(repr=False)
    credentials: Mapping[str, typing.Any] = dataclasses.field(repr=False)
    http: httpx.AsyncClient = dataclasses.field(repr=False)
    redirect_uri: str | None = None
    code: str | None = dataclasses.field(default=None, repr=False)
    code_verifier: str | None = dataclasses.field(default=None, repr=False)
    query: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)


def load_hook(reference: str, *, allowed: Callable[[str], bool], field: str) -> Callable[..., typing.Any]:
    """Import ``module:function`` if the module is allowed; SpecError naming the field otherwise."""
    if not allowed(reference):
        raise SpecError([ErrorItem(field, f"hook {reference!r} is not in an allowed module (AUTHBRIDGE_HOOK_MODULES)")])
    module_name, _, name = reference.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise SpecError([ErrorItem(field, f"hook {reference!r} cannot be loaded ({type(exc).__name__})")]) from None
    if not callable(function):
        raise SpecError([ErrorItem(field, f"hook {reference!r} is not a function")])
    return typing.cast(Callable[..., typing.Any], function)


async def call_hook(function: Callable[..., typing.Any], *args: typing.Any, integration: str, name: str) -> typing.Any:
    """Call a sync or async hook; its failures become an UpstreamError naming the hook, not its message."""
    try:
        result = function(*args)
        if inspect.isawaitable(result):
            result = await result
    except UpstreamError:
        raise
    except Exception as exc:  # noqa: BLE001 - hook code is the user's; any failure must become a clear error
        raise UpstreamError(
            f"{integration}: the {name} hook failed ({type(exc).__name__})", integration=integration
        ) from None
    return result


def _expiry(data: Mapping[str, typing.Any], now: datetime, integration: str) -> datetime | None:
    value = data.get("expires_at")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    seconds = data.get("expires_in")
    if isinstance(seconds, str) and seconds.strip().isdigit():
        seconds = int(seconds)
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and math.isfinite(seconds) and seconds > 0:
        return now + timedelta(seconds=seconds)
    if value is not None or seconds is not None:
        raise UpstreamError(
            f"{integration}: a hook returned an expiry that is not a positive number", integration=integration
        )
    return None


def token_set_from_credentials(data: object, *, now: datetime, integration: str) -> TokenSet:
    """Credentials a hook returned, as a TokenSet (``access_token`` required, other fields optional)."""
    if not isinstance(data, Mapping):
        raise UpstreamError(
            f"{integration}: a hook returned {type(data).__name__}, not a mapping", integration=integration
        )
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise UpstreamError(f"{integration}: a hook returned no access_token", integration=integration)
    refresh = data.get("refresh_token")
    for name, value in (("access_token", token), ("refresh_token", refresh)):
        problem = check_token_value(value) if isinstance(value, str) else None
        if problem:
            raise UpstreamError(
                f"{integration}: a hook returned an unusable {name} ({problem})", integration=integration
            )
    scope = data.get("scopes", data.get("scope"))
    scopes = scope.replace(",", " ").split() if isinstance(scope, str) else scope if isinstance(scope, list) else None
    token_type = data.get("token_type")
    return TokenSet(
        access_token=token,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        token_type=token_type if isinstance(token_type, str) else None,
        expires_at=_expiry(data, now, integration),
        scopes=[str(s) for s in scopes] if scopes is not None else None,
        extra={k: v for k, v in data.items() if k not in _STANDARD},
        raw=dict(data),
    )
