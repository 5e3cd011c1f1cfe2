"""The AuthBridge exception tree.

```
AuthBridgeError
├── ConfigError                  a setting is missing or malformed (names the variable)
├── SpecError                    an integration spec is invalid (every problem, with its field path)
├── TemplateError                a template cannot be parsed or rendered (names the reference, never the value)
│   └── UnsafeValueError         a value would change a URL's scheme/host/port or inject a header line
├── ParameterError               connection parameter values break the integration's rules (all listed)
├── SigningKeyError              a key to sign a JWT is malformed, of another kind than its algorithm, or too large
├── CryptoError                  a secret cannot be encrypted or decrypted
│   └── KeyRingMismatchError     the key ring cannot decrypt the stored data (refuse to start)
├── StoreError                   the database is unreachable or refused an operation
├── OutboundBlockedError         the SSRF guard refused a private, loopback or link-local address
├── UpstreamError                a third-party endpoint failed or answered something unusable
│   └── TokenEndpointError       the token (or revocation) endpoint refused or answered badly
│       └── RefreshUnavailableError  no refresh without the user (no refresh token); the token lives until it expires
├── ConnectError                 a connected account could not be created (upstream refused; nothing stored)
├── CallbackError                an OAuth callback with an unknown, used or expired state, or a bad answer
│   └── WrongBrowserError        a flow bound to one browser was finished in another (nothing changed)
├── ConnectionStateError         the connection cannot do this now (needs re-authorization, pending...)
├── NotFoundError                an integration, connection or key does not exist
│   └── IntegrationNotFound
├── ConflictError                the object exists already, or changed under us
├── AuthenticationError          a missing or wrong API key (never says which)
├── PermissionDeniedError        a valid API key without the scope the operation needs (names the scope)
├── RateLimitedError             a connection's request found no free slot (max_concurrent, pace) in time
└── PaginationError              a listing cannot go on: a page without items, a paging loop, max_pages
```

Every class carries a stable ``code``, the HTTP ``status_code`` the API maps it to and the
``exit_code`` the CLI exits with. Messages never contain secret values: code that raises them
names parameters and fields, not their contents. ``repr`` shows only the class and the code.
"""

from __future__ import annotations

import typing

__all__ = [
    "AuthBridgeError",
    "AuthenticationError",
    "CallbackError",
    "ConnectError",
    "ConnectionStateError",
    "ConfigError",
    "ConflictError",
    "CryptoError",
    "ErrorItem",
    "IntegrationNotFound",
    "KeyRingMismatchError",
    "NotFoundError",
    "OutboundBlockedError",
    "PaginationError",
    "ParameterError",
    "PermissionDeniedError",
    "RateLimitedError",
    "SigningKeyError",
    "RefreshUnavailableError",
    "SpecError",
    "StoreError",
    "TemplateError",
    "TokenEndpointError",
    "UnsafeValueError",
    "UpstreamError",
    "WrongBrowserError",
]


class ErrorItem(typing.NamedTuple):
    """One problem: where (a dotted field path, possibly empty; a source line when known) and why."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"line {self.line}: {text}" if self.line else text


class AuthBridgeError(Exception):
    """Base class of every error AuthBridge raises on purpose."""

    code: typing.ClassVar[str] = "error"
    status_code: typing.ClassVar[int] = 500
    exit_code: typing.ClassVar[int] = 1
    #: Which side failed, as the API reports it: "authbridge" or "upstream".
    side: str = "authbridge"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r})"


class _ManyErrors(AuthBridgeError):
    """An error that lists several problems at once."""

    def __init__(self, errors: typing.Sequence[ErrorItem], *, summary: str) -> None:
        self.errors: tuple[ErrorItem, ...] = tuple(errors)
        lines = "\n".join(f"  {item}" for item in self.errors)
        super().__init__(f"{summary}:\n{lines}" if lines else summary)


class ConfigError(AuthBridgeError):
    """A setting is missing or malformed; the message names the variable and what it accepts."""

    code = "config_error"
    exit_code = 2


class SpecError(_ManyErrors):
    """An integration spec is invalid. ``errors`` lists every problem with its field path.

    ```
    try:
        load_spec(text)
    except SpecError as exc:
        for item in exc.errors:
            print(item.path, item.message)
    ```
    """

    code = "invalid_spec"
    status_code = 422

    def __init__(self, errors: typing.Sequence[ErrorItem], *, source: str | None = None) -> None:
        self.source = source
        n = len(errors)
        where = f"{source}: " if source else ""
        super().__init__(errors, summary=f"{where}{n} problem{'s' if n != 1 else ''} in the integration spec")


class TemplateError(AuthBridgeError):
    """A template is malformed, refers to something unknown, or cannot be rendered."""

    code = "template_error"
    status_code = 422


class UnsafeValueError(TemplateError):
    """A value would change a URL's scheme, host or port, or inject a header line."""

    code = "unsafe_value"


class ParameterError(_ManyErrors):
    """Connection parameter values break the integration's rules; ``errors`` lists them all."""

    code = "invalid_parameters"
    status_code = 422

    def __init__(self, errors: typing.Sequence[ErrorItem], *, summary: str = "invalid connection parameters") -> None:
        super().__init__(errors, summary=summary)


class SigningKeyError(AuthBridgeError):
    """A JWT signing key cannot be used: malformed, public, encrypted, of another kind than its algorithm, or too large.

    The message names the field the key came from and what is wrong, never the key.
    """

    code = "invalid_signing_key"
    status_code = 422


class CryptoError(AuthBridgeError):
    """A secret cannot be decrypted: wrong key, tampered data, or a ciphertext moved between rows."""

    code = "crypto_error"


class KeyRingMismatchError(CryptoError):
    """The configured key ring cannot decrypt the data already stored."""

    code = "key_ring_mismatch"
    exit_code = 3


class StoreError(AuthBridgeError):
    """The database is unreachable or refused an operation."""

    code = "store_error"
    status_code = 503


class OutboundBlockedError(AuthBridgeError):
    """An outbound call was refused: its host resolves to a private, loopback or link-local address."""

    code = "outbound_blocked"
    status_code = 502


class UpstreamError(AuthBridgeError):
    """A third-party endpoint failed, timed out or answered something unusable.

    ``side`` is ``"upstream"``: the API says which side failed. Messages name the integration and
    the endpoint (without its query), never a token.
    """

    code = "upstream_error"
    status_code = 502
    side = "upstream"

    def __init__(self, message: str, *, integration: str | None = None, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.integration = integration
        self.endpoint = endpoint


class TokenEndpointError(UpstreamError):
    """The token endpoint refused the request, or its answer holds no usable token.

    ``error`` is the OAuth error code when the provider sent one (``invalid_grant``...);
    ``permanent`` tells a refresh loop to stop (re-authorization needed) rather than back off.
    """

    code = "token_endpoint_error"

    def __init__(
        self,
        message: str,
        *,
        integration: str | None = None,
        endpoint: str | None = None,
        error: str | None = None,
        status: int | None = None,
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, integration=integration, endpoint=endpoint)
        self.error = error
        self.status = status
        self.permanent = permanent
        self.retry_after = retry_after


class RefreshUnavailableError(TokenEndpointError):
    """The token cannot be refreshed without the user (no refresh token); nothing was sent upstream.

    Permanent once the token has expired; until then the current token stays valid and in use.
    """

    code = "refresh_unavailable"

    def __init__(self, message: str, *, integration: str | None = None) -> None:
        super().__init__(message, integration=integration, permanent=True)


class ConnectError(AuthBridgeError):
    """Creating a connected account failed upstream (the token request was refused); nothing was stored."""

    code = "connect_failed"
    status_code = 422

    def __init__(self, message: str, *, side: str = "upstream") -> None:
        super().__init__(message)
        self.side = side


class CallbackError(AuthBridgeError):
    """An OAuth callback that cannot be accepted: unknown, used or expired state, or a mismatched issuer."""

    code = "invalid_callback"
    status_code = 400


class ConnectionStateError(AuthBridgeError):
    """The connection cannot do this in its current state (pending, needs re-authorization...)."""

    code = "connection_state"
    status_code = 409


class NotFoundError(AuthBridgeError):
    """The requested object does not exist."""

    code = "not_found"
    status_code = 404


class IntegrationNotFound(NotFoundError):
    """No integration with this key."""

    code = "integration_not_found"


class ConflictError(AuthBridgeError):
    """The object already exists, or changed while we were working on it."""

    code = "conflict"
    status_code = 409


class AuthenticationError(AuthBridgeError):
    """A missing or wrong API key. The message never says which."""

    code = "unauthorized"
    status_code = 401


class PermissionDeniedError(AuthBridgeError):
    """A valid API key that lacks the scope an operation needs. The message names the scope."""

    code = "insufficient_scope"
    status_code = 403
    exit_code = 4


class PaginationError(AuthBridgeError):
    """``paginate`` cannot go on: a page answered an error, has no list of items, repeats a cursor or a
    link (a loop), or ``max_pages`` was reached with more left. ``upstream_status`` is the page's status
    when it answered an error.
    """

    code = "pagination_error"
    status_code = 502
    side = "upstream"

    def __init__(self, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


class RateLimitedError(AuthBridgeError):
    """A request found no free slot on its connection (``rate_limit.max_concurrent`` or ``pace``) in time.

    ``retry_after`` is the number of seconds worth waiting before trying again.
    """

    code = "rate_limited"
    status_code = 429

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WrongBrowserError(CallbackError):
    """A flow started from a connect page came back in a browser without that page's cookie: nothing changed."""

    code = "wrong_browser"
