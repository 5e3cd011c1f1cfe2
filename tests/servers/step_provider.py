"""A provider whose tokens take several requests, on loopback (Starlette under uvicorn, in a thread).

- ``GET /auth/nonce`` issues a single-use nonce: ``{"data": {"nonce": ...}}``.
- ``POST /auth/login`` (JSON ``user``, ``password``, ``nonce``; header ``X-Nonce`` equal to it) spends
  the nonce and answers a ``vault_session`` cookie; a replayed or unknown nonce is ``401 invalid_nonce``.
- ``GET /api/me`` needs ``Cookie: vault_session=<live session>``.
- ``POST /app/installations/{id}/access_tokens`` (GitHub App style) needs ``Authorization: Bearer <app JWT>``,
  RS256 over ``app_public_key``, ``iss`` the app id, ``iat``/``exp`` at most 10 minutes apart.

``state.mode`` makes it misbehave (``no_nonce``, ``crlf_nonce``, ``huge_nonce``, ``huge_body``, ``stale_nonce``,
``login_500``), and
``state.expire_sessions()`` makes every session stale, so the next API call is refused with 401.

Used by ``tests/api/test_token_steps_e2e.py``; the flow's unit tests are ``tests/auth/test_steps.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import typing
from collections.abc import Iterator

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.proxy.upstream import free_port, serve

USER, PASSWORD = "alice", "pw-Secret-123"
APP_ID = "4242"
INSTALLATION_ID = "77"


@dataclasses.dataclass
class StepState:
    """What the test sees and changes."""

    nonces: set[str] = dataclasses.field(default_factory=set)
    spent: set[str] = dataclasses.field(default_factory=set)
    sessions: set[str] = dataclasses.field(default_factory=set)
    installation_tokens: set[str] = dataclasses.field(default_factory=set)
    #: Every request's method and path, in order.
    calls: list[str] = dataclasses.field(default_factory=list)
    mode: str = "ok"
    #: The PEM public key app JWTs are verified with (GitHub App endpoint).
    app_public_key: bytes | None = None
    jwt_claims: list[dict[str, typing.Any]] = dataclasses.field(default_factory=list)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def expire_sessions(self) -> None:
        self.sessions.clear()
        self.installation_tokens.clear()


def make_app(state: StepState) -> Starlette:
    async def nonce(request: Request) -> Response:
        state.calls.append("GET /auth/nonce")
        if state.mode == "no_nonce":
            return JSONResponse({"data": {}})
        if state.mode == "huge_body":
            return Response(b'{"data": {"nonce": "' + b"n" * (2 * 1024 * 1024) + b'"}}', media_type="application/json")
        if state.mode == "huge_nonce":
            return JSONResponse({"data": {"nonce": "n" * 10_000}})
        if state.mode == "stale_nonce" and state.spent:
            return JSONResponse({"data": {"nonce": next(iter(state.spent))}})  # hands out a spent one again
        value = secrets.token_urlsafe(24)
        if state.mode == "crlf_nonce":
            value += "\r\nX-Evil: 1"
        state.nonces.add(value)
        return JSONResponse({"data": {"nonce": value}})

    async def login(request: Request) -> Response:
        state.calls.append("POST /auth/login")
        if state.mode == "login_500":
            return JSONResponse({"error": "server_error", "error_description": "database down"}, status_code=500)
        body = await request.json()
        value = body.get("nonce")
        if value in state.spent:
            return JSONResponse({"error": "invalid_nonce", "error_description": "nonce replayed"}, status_code=401)
        if value not in state.nonces or request.headers.get("x-nonce") != value:
            return JSONResponse({"error": "invalid_nonce", "error_description": "unknown nonce"}, status_code=401)
        state.nonces.discard(value)
        state.spent.add(value)
        if (body.get("user"), body.get("password")) != (USER, PASSWORD):
            return JSONResponse({"error": "invalid_credentials"}, status_code=401)
        session = secrets.token_urlsafe(32)
        state.sessions.add(session)
        response = JSONResponse({"ttl": 900, "user": {"id": 7}})
        response.set_cookie("vault_session", session, httponly=True)
        return response

    async def me(request: Request) -> Response:
        state.calls.append("GET /api/me")
        if request.cookies.get("vault_session") not in state.sessions:
            return JSONResponse({"error": "stale session"}, status_code=401)
        return JSONResponse({"id": 7, "name": "Alice"})

    async def installation_token(request: Request) -> Response:
        installation = request.path_params["installation"]
        state.calls.append(f"POST /app/installations/{installation}/access_tokens")
        scheme, _, assertion = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or state.app_public_key is None:
            return JSONResponse({"message": "A JSON web token could not be decoded"}, status_code=401)
        try:
            token = jwt.decode(assertion, RSAKey.import_key(state.app_public_key), algorithms=["RS256"])
            jwt.JWTClaimsRegistry(iat={"essential": True}, exp={"essential": True}).validate(token.claims)
        except JoseError as exc:
            return JSONResponse({"message": f"bad JWT: {type(exc).__name__}"}, status_code=401)
        claims = token.claims
        if str(claims.get("iss")) != APP_ID or claims["exp"] - claims["iat"] > 600:
            return JSONResponse({"message": "'Issuer' claim or lifetime is wrong"}, status_code=401)
        if installation != INSTALLATION_ID:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        state.jwt_claims.append(claims)
        issued = "ghs_" + secrets.token_urlsafe(24)
        state.installation_tokens.add(issued)
        return JSONResponse({"token": issued, "expires_at": "2099-01-01T00:00:00Z"}, status_code=201)

    async def repos(request: Request) -> Response:
        state.calls.append("GET /installation/repositories")
        token = request.headers.get("authorization", "").removeprefix("token ")
        if token not in state.installation_tokens:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse({"total_count": 1})

    return Starlette(
        routes=[
            Route("/auth/nonce", nonce),
            Route("/auth/login", login, methods=["POST"]),
            Route("/api/me", me),
            Route("/app/installations/{installation}/access_tokens", installation_token, methods=["POST"]),
            Route("/installation/repositories", repos),
        ]
    )


@dataclasses.dataclass(frozen=True)
class StepProvider:
    url: str
    state: StepState


@contextlib.contextmanager
def run_step_provider() -> Iterator[StepProvider]:
    """The provider on a free loopback port, in a thread."""
    state = StepState()
    with serve(make_app(state), free_port()) as url:
        yield StepProvider(url, state)
