"""Connect sessions: the application's backend lets one end user connect accounts from a browser.

The backend (an API key with the ``connect`` scope) creates a session naming the end user, the
integrations they may connect (or the one connection to re-authorize), fixed parameter values and
where to send the browser afterwards. It gets a token (256 random bits, stored hashed) and a
``connect_url`` to hand to the browser; the hosted connect page works from that token alone.
"""

from __future__ import annotations

import dataclasses
import secrets
import typing
from collections.abc import Callable, Mapping
from datetime import timedelta

from authbridge.broker.connect import Connected, Connections, FlowBinding, Owner
from authbridge.errors import ConnectionStateError, ErrorItem, IntegrationNotFound, NotFoundError, ParameterError
from authbridge.spec import Integration, check_parameter_values, parse_duration
from authbridge.store import ApiKeyRecord, ConnectSessionRecord, Store
from authbridge.types import Clock

__all__ = ["CONNECT_TOKEN_PREFIX", "ConnectSessions", "NewSession", "SessionRequest"]

#: Connect-session tokens start with this, so a leaked one is recognisable (and never mistaken for an API key).
CONNECT_TOKEN_PREFIX = "abcs_"  # noqa: S105 - a prefix, not a secret
DEFAULT_TTL = timedelta(minutes=30)
MAX_TTL = timedelta(hours=24)
MIN_TTL = timedelta(seconds=10)


@dataclasses.dataclass(frozen=True)
class SessionRequest:
    """What the backend asks for (already shaped by the API model)."""

    end_user: dict[str, str]
    organization: dict[str, str] | None = None
    allowed_integrations: list[str] | None = None
    reconnect: str | None = None
    parameters: dict[str, dict[str, typing.Any]] = dataclasses.field(default_factory=dict, repr=False)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    return_to: str | None = None
    ttl: str | int | float | None = None


@dataclasses.dataclass(frozen=True)
class NewSession:
    """A created session: its token (shown once), the URL to open, and the stored record."""

    token: str = dataclasses.field(repr=False)
    connect_url: str
    session: ConnectSessionRecord


class ConnectSessions:
    """Create, find and end connect sessions; every action is recorded as an event (never the token)."""

    def __init__(
        self,
        store: Store,
        connections: Connections,
        *,
        public_url: str,
        allow_http: Callable[[str], bool],
        clock: Clock,
    ) -> None:
        self.store = store
        self.connections = connections
        self.public_url = public_url.rstrip("/")
        self.allow_http = allow_http
        self.clock = clock

    async def create(self, request: SessionRequest, *, caller: ApiKeyRecord | None = None) -> NewSession:
        """Check the request (every problem at once; nothing stored on any), store the session, record it."""
        problems: list[ErrorItem] = []
        ttl = self._ttl(request.ttl, problems)
        if (request.allowed_integrations is None) == (request.reconnect is None):
            problems.append(ErrorItem("allowed_integrations", "give either allowed_integrations or reconnect"))
        keys = list(request.allowed_integrations or [])
        if request.allowed_integrations is not None and not keys:
            problems.append(ErrorItem("allowed_integrations", "must name at least one integration"))
        if request.reconnect is not None:
            try:
                connection = await self.store.connections.get(request.reconnect)
            except NotFoundError:
                problems.append(ErrorItem("reconnect", f"no connection with id {request.reconnect!r}"))
            else:
                keys = [connection.integration_key]
                if connection.end_user and connection.end_user.get("id") != request.end_user.get("id"):
                    problems.append(ErrorItem("reconnect", "the connection belongs to another end user"))
        specs = {}
        for key in dict.fromkeys(keys):
            try:
                specs[key] = (await self.store.integrations.get(key)).spec
            except IntegrationNotFound:
                problems.append(ErrorItem("allowed_integrations", f"no integration with key {key!r}"))
        fixed: dict[str, dict[str, str]] = {}
        for key, values in request.parameters.items():
            if key not in specs:
                problems.append(ErrorItem(f"parameters.{key}", "is not one of the session's integrations"))
                continue
            fixed[key] = self._fixed_parameters(key, specs[key], values, problems)
        try:
            self.connections.check_return_to(request.return_to)
        except ParameterError as exc:
            problems.extend(exc.errors)
        if problems:
            raise ParameterError(problems)
        token = CONNECT_TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = await self.store.connect_sessions.create(
            token,
            end_user=request.end_user,
            organization=request.organization,
            allowed_integrations=list(dict.fromkeys(keys)) if request.reconnect is None else None,
            parameters=fixed,
            tags=request.tags,
            return_to=request.return_to,
            reconnect_id=request.reconnect,
            created_by=caller.id if caller else None,
            expires_at=self.clock() + ttl,
        )
        await self.store.events.add(
            "connect_session.created",
            connection_id=request.reconnect,
            data={
                "session_id": record.id,
                "caller": {"id": caller.id, "name": caller.name} if caller else None,
                "end_user": record.end_user,
                "organization": record.organization,
                "integrations": keys,
                "reconnect": request.reconnect,
            },
        )
        return NewSession(token, f"{self.public_url}/connect/{token}", record)

    async def end(self, token: str, *, caller: ApiKeyRecord | None = None) -> ConnectSessionRecord:
        """End a session now; NotFoundError when the token is unknown."""
        record = await self.store.connect_sessions.end(token)
        if record is None:
            raise NotFoundError("no connect session with this token")
        await self.store.events.add(
            "connect_session.ended",
            connection_id=record.reconnect_id,
            data={
                "session_id": record.id,
                "caller": {"id": caller.id, "name": caller.name} if caller else None,
                "end_user": record.end_user,
            },
        )
        return record

    async def connect(
        self,
        session: ConnectSessionRecord,
        integration_key: str,
        *,
        parameters: Mapping[str, object],
        credentials: Mapping[str, object],
        return_to: str,
        binding: FlowBinding,
    ) -> Connected:
        """Connect one of the session's integrations for its end user.

        The backend's fixed values win over anything the page sent. Accounts that need no browser
        redirect complete the session at once; OAuth ones complete it at the callback.
        """
        self._check_open(session)
        if session.reconnect_id is not None or integration_key not in (session.allowed_integrations or []):
            raise ConnectionStateError(f"this connect session does not offer {integration_key!r}")
        await self._forget_unfinished(session)
        fixed = session.parameters.get(integration_key, {})
        end_user = session.end_user
        owner = Owner(end_user=end_user, organization=session.organization, tags=session.tags or None)
        result = await self.connections.create(
            integration_key=integration_key,
            name=end_user.get("display_name") or end_user["id"],
            parameters={**parameters, **fixed},
            credentials=credentials,
            return_to=return_to,
            owner=owner,
            binding=binding,
        )
        if result.authorize_url is None:
            await self.store.connect_sessions.complete(session.id, result.connection.id)
        else:
            await self.store.connect_sessions.set_pending(session.id, result.connection.id)
        return result

    async def _forget_unfinished(self, session: ConnectSessionRecord) -> None:
        """A retry replaces the connection an abandoned or refused authorization of this session left behind."""
        if session.connection_id is None or session.used_at is not None:
            return
        try:
            left = await self.store.connections.get(session.connection_id)
        except NotFoundError:
            return
        if left.status in {"pending", "error"} and (left.end_user or {}).get("id") == session.end_user.get("id"):
            await self.store.connections.delete(left.id)
            self.connections.keeper.changed(left.id)

    async def reconnect(
        self,
        session: ConnectSessionRecord,
        *,
        credentials: Mapping[str, object],
        return_to: str,
        binding: FlowBinding,
    ) -> Connected:
        """Re-authorize the session's connection in place (same id): a new OAuth flow, or new entered credentials."""
        self._check_open(session)
        if session.reconnect_id is None:
            raise ConnectionStateError("this connect session is not for re-authorizing a connection")
        connection_id = session.reconnect_id
        if await self.connections.takes_entered_credentials(connection_id):
            result = Connected(await self.connections.replace_credentials(connection_id, credentials))
        else:
            result = await self.connections.reconnect(connection_id, return_to=return_to, binding=binding)
        if result.authorize_url is None:
            await self.store.connect_sessions.complete(session.id, connection_id)
        return result

    def _check_open(self, session: ConnectSessionRecord) -> None:
        state = session.state(self.clock())
        if state != "open":
            raise ConnectionStateError(f"this connect session is {state}: ask the application for a new link")

    async def find(self, token: str) -> ConnectSessionRecord | None:
        """The session of a token in any state, or None."""
        if not token.startswith(CONNECT_TOKEN_PREFIX):
            return None
        return await self.store.connect_sessions.find(token)

    @staticmethod
    def _ttl(raw: str | int | float | None, problems: list[ErrorItem]) -> timedelta:
        if raw is None:
            return DEFAULT_TTL
        try:
            ttl = parse_duration(raw)
        except ValueError as exc:
            problems.append(ErrorItem("ttl", str(exc)))
            return DEFAULT_TTL
        if not MIN_TTL <= ttl <= MAX_TTL:
            problems.append(ErrorItem("ttl", "must be between 10s and 24h"))
        return ttl

    def _fixed_parameters(
        self, key: str, spec: Integration, values: Mapping[str, typing.Any], problems: list[ErrorItem]
    ) -> dict[str, str]:
        """The backend's values for one integration, each checked like a connection's.

        Only the problems of the given values count here: the others are asked on the connect page
        and the whole set is checked again when the connection is made.
        """
        given = {f"parameters.{name}": name for name in values}
        try:
            check_parameter_values(spec, values, allow_http=self.allow_http)
        except ParameterError as exc:
            mine = [e for e in exc.errors if e.path in given]
            problems.extend(ErrorItem(f"parameters.{key}.{given[e.path]}", e.message) for e in mine)
            if mine:
                return {}
        return {name: str(value) for name, value in values.items() if value not in (None, "")}
