"""Secrets typed into a console form that came back with an error, held on the server between the two tries.

A password input is never refilled (the page would carry the secret). Instead the typed value is kept
here, under a random draft id bound to the console session, and the page carries only that id; the
next submit of the same session takes it back when the field is left empty.

```
draft = drafts.keep(sid, {"oauth2.client_secret": "s3cr3t"})   # the page carries `draft`
kept = drafts.get(sid, draft)                                      # {} when unknown, expired or another session's
```

Drafts live in this process's memory for ten minutes (at most ``limit`` of them, the oldest dropped
first). Behind several replicas a retry that lands on another one finds nothing: the form then asks
for the secret again (a field error), it never saves without it silently.
"""

from __future__ import annotations

import secrets
import time
import typing
from collections import OrderedDict
from collections.abc import Callable, Mapping

__all__ = ["DRAFT_SECONDS", "SecretDrafts"]

#: How long a kept secret waits for the corrected form (the OAuth flow's own expiry).
DRAFT_SECONDS = 600


class _Draft(typing.NamedTuple):
    sid: str
    expires: float
    values: dict[str, str]


class SecretDrafts:
    """Kept secrets by draft id; each draft belongs to one console session."""

    def __init__(self, *, limit: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self._drafts: OrderedDict[str, _Draft] = OrderedDict()
        self._limit = limit
        self._clock = clock

    def __repr__(self) -> str:
        return f"SecretDrafts({len(self._drafts)} kept)"

    def _sweep(self, now: float) -> None:
        for draft_id in [d for d, draft in self._drafts.items() if draft.expires <= now]:
            del self._drafts[draft_id]
        while len(self._drafts) >= self._limit:
            self._drafts.popitem(last=False)

    def keep(self, sid: str, values: Mapping[str, str]) -> str:
        """Keep the non-empty ``values`` for the session ``sid``; the draft id to put on the page ("" for none)."""
        kept = {name: value for name, value in values.items() if value}
        if not kept or not sid:
            return ""
        now = self._clock()
        self._sweep(now)
        draft_id = secrets.token_urlsafe(24)
        self._drafts[draft_id] = _Draft(sid, now + DRAFT_SECONDS, kept)
        return draft_id

    def get(self, sid: str, draft_id: str) -> dict[str, str]:
        """The values kept under ``draft_id`` for ``sid`` (empty when unknown, expired or another session's)."""
        draft = self._drafts.get(draft_id)
        if draft is None or not sid or draft.sid != sid or draft.expires <= self._clock():
            return {}
        return dict(draft.values)

    def take(self, sid: str, draft_id: str) -> dict[str, str]:
        """Like :meth:`get`, once: the draft is gone afterwards (a key shown once after a redirect)."""
        values = self.get(sid, draft_id)
        if values:
            del self._drafts[draft_id]
        return values
