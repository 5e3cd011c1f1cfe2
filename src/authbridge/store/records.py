"""What the repositories return: plain frozen dataclasses, secrets decrypted, reprs redacted."""

from __future__ import annotations

import dataclasses
import typing
from datetime import datetime

from authbridge.spec import Integration

__all__ = [
    "ApiKeyRecord",
    "ConnectionRecord",
    "CredentialRecord",
    "EventRecord",
    "FlowRecord",
    "IntegrationRecord",
]


@dataclasses.dataclass(frozen=True)
class IntegrationRecord:
    """A stored integration. ``spec`` holds the client secret in clear: never serialize it raw."""

    id: str
    key: str
    spec: Integration
    version: int
    created_at: datetime
    updated_at: datetime


@dataclasses.dataclass(frozen=True)
class ConnectionRecord:
    """A connected account. ``parameters`` holds secret values in clear; ``repr`` masks them."""

    id: str
    integration_id: str
    integration_key: str
    name: str
    status: str
    parameters: dict[str, str] = dataclasses.field(repr=False)
    secret_names: frozenset[str]
    last_error: str | None
    warning: str | None
    expires_at: datetime | None
    last_refreshed_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    refresh_failures: int = 0
    next_refresh_at: datetime | None = None

    def public_parameters(self, mask: str = "********") -> dict[str, str]:
        """The parameter values with every secret one replaced by ``mask``."""
        return {k: (mask if k in self.secret_names else v) for k, v in self.parameters.items()}


@dataclasses.dataclass(frozen=True)
class CredentialRecord:
    """Tokens and fields of one connection. The secret fields are left out of ``repr``.

    ``extra`` holds fields kept from token responses and callbacks (``{credentials.x}`` in templates);
    ``inputs`` what the user entered to connect (API token, username and password).
    """

    access_token: str | None = dataclasses.field(default=None, repr=False)
    refresh_token: str | None = dataclasses.field(default=None, repr=False)
    token_type: str | None = None
    expires_at: datetime | None = None
    scopes: list[str] | None = None
    raw: dict[str, typing.Any] = dataclasses.field(default_factory=dict, repr=False)
    extra: dict[str, typing.Any] = dataclasses.field(default_factory=dict, repr=False)
    inputs: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)
    #: Bumped on every write; a refresh result is written only over the version it started from.
    version: int = 0
    #: When these credentials were stored (the start of the token's lifetime, for the refresh window).
    obtained_at: datetime | None = None


@dataclasses.dataclass(frozen=True)
class FlowRecord:
    """A consumed OAuth flow: where it came from and the PKCE verifier to finish it."""

    connection_id: str
    code_verifier: str | None = dataclasses.field(repr=False)
    redirect_uri: str
    return_to: str | None
    created_at: datetime
    expires_at: datetime


@dataclasses.dataclass(frozen=True)
class EventRecord:
    """A stored event."""

    id: int
    type: str
    connection_id: str | None
    integration_key: str | None
    data: dict[str, typing.Any]
    created_at: datetime


@dataclasses.dataclass(frozen=True)
class ApiKeyRecord:
    """An API key's metadata; the key itself is shown once, at creation, and never stored."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
