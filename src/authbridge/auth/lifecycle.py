"""When to refresh: the window rule, rejections worth a refresh, and back-off after failures. Pure."""

from __future__ import annotations

import random
import re
import typing
from datetime import datetime, timedelta

from authbridge.auth.discovery import challenge_params
from authbridge.spec import RefreshPolicy

__all__ = [
    "MAX_WANTED_SCOPES",
    "REJECTION_REFRESH_INTERVAL",
    "StepUp",
    "backoff_delay",
    "effective_window",
    "insufficient_scope",
    "is_refresh_due",
    "refresh_on_rejection",
]

#: At most one refresh triggered by upstream rejections per connection in this interval,
#: unless the token changed since (so a misbehaving API cannot cause a rotation storm).
REJECTION_REFRESH_INTERVAL = timedelta(seconds=30)


def effective_window(policy: RefreshPolicy, lifetime: timedelta | None) -> timedelta:
    """The refresh window: ``policy.window``, or half the token's lifetime when that is under twice the window.

    A 5-minute token with the default 30-minute window is refreshed with 2.5 minutes left, not on
    every call.
    """
    window = policy.window
    if lifetime is not None and lifetime > timedelta(0) and lifetime < 2 * window:
        return lifetime / 2
    return window


def is_refresh_due(
    policy: RefreshPolicy, *, expires_at: datetime | None, obtained_at: datetime | None, now: datetime
) -> bool:
    """Whether a token should be refreshed before use. A token with no known expiry never is."""
    if expires_at is None:
        return False
    lifetime = expires_at - obtained_at if obtained_at is not None else None
    return expires_at - now <= effective_window(policy, lifetime)


def refresh_on_rejection(policy: RefreshPolicy, status: int, www_authenticate: str | None = None) -> bool:
    """Whether an upstream answer is worth one refresh and retry.

    Only statuses in ``on_status``; a 403 whose ``WWW-Authenticate`` says ``insufficient_scope`` is
    not (a new token would carry the same scopes).
    """
    if status not in policy.on_status:
        return False
    return not (status == 403 and www_authenticate and "insufficient_scope" in www_authenticate.lower())


def backoff_delay(
    failures: int,
    *,
    retry_after: float | None = None,
    base: timedelta = timedelta(seconds=10),
    cap: timedelta = timedelta(minutes=30),
    rng: random.Random | None = None,
) -> timedelta:
    """How long to wait after ``failures`` transient failures in a row: exponential, full jitter, capped.

    A ``Retry-After`` from the upstream is honoured as a floor.
    """
    rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2 ** max(failures - 1, 0))
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, 24 * 3600)
    return timedelta(seconds=delay)


#: The most scopes a connection may be asked to want (old and new together), and the longest challenge read.
MAX_WANTED_SCOPES = 32
MAX_CHALLENGE = 4096
_MAX_SCOPE = 200
#: RFC 6749 §3.3 scope-token: NQCHAR (printable ASCII but space, ``"`` and ``\\``).
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class StepUp(typing.NamedTuple):
    """A resource server's ``insufficient_scope`` challenge: the scopes it names, or why they are not used."""

    scopes: tuple[str, ...]
    problem: str | None = None


def insufficient_scope(status: int, www_authenticate: str | None) -> StepUp | None:
    """A 403 whose ``WWW-Authenticate`` says ``error="insufficient_scope"`` (RFC 6750 §3.1, MCP step-up); else None.

    The ``scope`` named must be 1 to MAX_WANTED_SCOPES RFC 6749 scope-tokens of at most 200
    characters, separated by single spaces, in a challenge of at most 4096 characters; anything
    else comes back with ``problem`` set (and no scopes): a hostile server cannot make a connection
    ask for an unbounded or malformed scope.
    """
    if status != 403 or not www_authenticate or "insufficient_scope" not in www_authenticate.lower():
        return None
    if len(www_authenticate) > MAX_CHALLENGE:
        return StepUp((), f"its challenge is longer than {MAX_CHALLENGE} characters")
    params = challenge_params(www_authenticate)
    if params.get("error") != "insufficient_scope":
        return None
    scope = params.get("scope")
    if not scope:
        return StepUp((), "it names no scope")
    scopes = scope.split(" ")
    if len(scopes) > MAX_WANTED_SCOPES:
        return StepUp((), f"it names more than {MAX_WANTED_SCOPES} scopes")
    if not all(_SCOPE_TOKEN.fullmatch(one) and len(one) <= _MAX_SCOPE for one in scopes):
        return StepUp((), "its scope is not a list of RFC 6749 scope tokens")
    return StepUp(tuple(dict.fromkeys(scopes)))
