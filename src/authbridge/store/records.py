"""What the repositories return: plain frozen dataclasses, secrets decrypted, reprs redacted."""

from __future__ import annotations

import dataclasses
import typing
from datetime import datetime

from authbridge.spec import Integration

__all__ = [
    "ApiKeyRecord",
    "ConnectSessionRecord",
    "ConnectionRecord",
    "CredentialRecord",
    "EventRecord",
    "FlowRecord",
    "IntegrationRecord",
    "RefreshOutcome",
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
    #: The application's end user who owns the account: ``{"id", "email"?, "display_name"?}``.
    end_user: dict[str, str] | None = None
    #: Their organization: ``{"id", "display_name"?}``.
    organization: dict[str, str] | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Scopes a resource server asked for (step-up): added to the next authorization's scopes.
    wanted_scopes: tuple[str, ...] = ()

    def owner(self) -> dict[str, typing.Any]:
        """``end_user`` and ``organization`` for the events and webhooks of the connection (empty if it has none)."""
        if self.end_user is None and self.organization is None:
            return {}
        return {"end_user": self.end_user, "organization": self.organization}

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

    def stored(self, version: int, obtained_at: datetime) -> CredentialRecord:
        """These credentials as written: ``replace(self, version=..., obtained_at=...)`` at ~60 % of its cost.

        (A refresh storm makes one per refresh. Every field is passed: a test compares it with ``replace``.)
        """
        return CredentialRecord(
            access_token=self.access_token,
            refresh_token=self.refresh_token,
            token_type=self.token_type,
            expires_at=self.expires_at,
            scopes=self.scopes,
            raw=self.raw,
            extra=self.extra,
            inputs=self.inputs,
            version=version,
            obtained_at=obtained_at,
        )


@dataclasses.dataclass(frozen=True)
class RefreshOutcome:
    """One refresh result of a batch, to store over the credentials' ``version`` (``ConnectionRepo.store_refreshes``).

    ``events``: the events to log with it, ``(type, data)``; data must hold no secret.
    """

    connection_id: str
    integration_key: str
    credentials: CredentialRecord = dataclasses.field(repr=False)
    version: int
    warning: str | None = None
    events: tuple[tuple[str, dict[str, typing.Any]], ...] = ()
    #: The connection's owner, carried into its events as ``EventRepo.add`` does.
    end_user: dict[str, typing.Any] | None = None
    organization: dict[str, typing.Any] | None = None


@dataclasses.dataclass(frozen=True)
class FlowRecord:
    """A consumed OAuth flow: where it came from and the PKCE verifier to finish it."""

    connection_id: str
    code_verifier: str | None = dataclasses.field(repr=False)
    redirect_uri: str
    return_to: str | None
    created_at: datetime
    expires_at: datetime
    #: The connect session the flow was started from, if any.
    connect_session_id: str | None = None


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
    #: What the key may do; ``admin`` is everything.
    scopes: tuple[str, ...] = ("admin",)


@dataclasses.dataclass(frozen=True)
class ConnectSessionRecord:
    """A connect session (never its token, which is shown once). ``parameters`` may hold secrets."""

    id: str
    end_user: dict[str, str]
    organization: dict[str, str] | None
    allowed_integrations: list[str] | None
    parameters: dict[str, dict[str, str]] = dataclasses.field(repr=False)
    tags: dict[str, str]
    return_to: str | None
    reconnect_id: str | None
    created_by: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    ended_at: datetime | None
    connection_id: str | None

    def state(self, now: datetime) -> str:
        """``open``, ``used``, ``ended`` or ``expired``."""
        if self.ended_at is not None:
            return "ended"
        if self.used_at is not None:
            return "used"
        if self.expires_at <= now:
            return "expired"
        return "open"
