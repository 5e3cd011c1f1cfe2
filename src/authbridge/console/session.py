"""Signed session cookies and CSRF tokens. The cookie holds a few claims, never flow state.

A session is live only while the server holds its row too (``store.console_sessions``, keyed by the
SHA-256 of ``sid``): sign-out deletes the row, so a copy of the cookie stops working with it.

A session cookie is ``base64url(json claims) "." base64url(HMAC-SHA256)``, about 150 bytes:

```
signer = Signer(secret)
value = signer.seal({"sid": new_sid(), "sub": "key:...", "exp": 1700000000})
claims = signer.open(value, now=time.time())        # None when forged, altered or expired
csrf = signer.token("csrf", claims["sid"])          # bound to the session, checked on every POST
```
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import typing

__all__ = ["COOKIE", "LOGIN_COOKIE", "SESSION_SECONDS", "Signer", "new_sid", "safe_next"]

#: The session cookie, and the pre-sign-in cookie that carries the sign-in form's CSRF nonce.
COOKIE = "authbridge_console"
LOGIN_COOKIE = "authbridge_console_login"
#: A session lasts 12 hours, however active.
SESSION_SECONDS = 12 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_sid() -> str:
    """A fresh random session id (new at every sign-in, so a planted cookie is never promoted)."""
    return secrets.token_urlsafe(16)


class Signer:
    """HMAC-SHA256 under one secret, with a purpose label per use so tokens never stand in for each other."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the console secret must have at least 32 bytes")
        self._secret = secret

    def __repr__(self) -> str:
        return "Signer(<hidden>)"

    def _mac(self, purpose: str, payload: bytes) -> bytes:
        return hmac.new(self._secret, purpose.encode("ascii") + b"\x00" + payload, hashlib.sha256).digest()

    def seal(self, claims: typing.Mapping[str, object], *, purpose: str = "session") -> str:
        """The cookie value for ``claims`` (which must be JSON); ``purpose`` keeps a flash from passing as a session."""
        payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("utf-8")
        return f"{_b64(payload)}.{_b64(self._mac(purpose, payload))}"

    def open(self, value: str | None, *, now: float, purpose: str = "session") -> dict[str, typing.Any] | None:
        """The claims of a valid, unexpired cookie value sealed for ``purpose``; None otherwise."""
        if not value or value.count(".") != 1 or len(value) > 2048:
            return None
        body, mac = value.split(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except ValueError:
            return None
        if not hmac.compare_digest(given, self._mac(purpose, payload)):
            return None
        try:
            claims = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int | float) or claims["exp"] <= now:
            return None
        if not isinstance(claims.get("sid"), str) or not isinstance(claims.get("sub"), str):
            return None
        return claims

    def token(self, purpose: str, value: str) -> str:
        """A token derived from ``value`` (a session id, a sign-in nonce) for one purpose."""
        return _b64(self._mac(purpose, value.encode("utf-8")))

    def check(self, purpose: str, value: str | None, given: str | None) -> bool:
        """Whether ``given`` is the token of ``value`` for ``purpose`` (constant time)."""
        if not value or not given:
            return False
        return hmac.compare_digest(self.token(purpose, value).encode("ascii"), given.encode("utf-8", "replace"))


def safe_next(target: str | None, *, prefix: str) -> str:
    """``target`` when it is a path inside the console, else the console's home (no open redirect)."""
    if target and target.startswith(prefix + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return prefix + "/"
