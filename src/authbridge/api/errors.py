"""AuthBridgeError (and FastAPI's own validation errors) → a JSON problem response. No secrets."""

from __future__ import annotations

import logging
import typing

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from authbridge.errors import AuthBridgeError, AuthenticationError, ErrorItem

__all__ = ["error_response", "install_error_handlers", "too_large_message"]

logger = logging.getLogger("authbridge.api")


def too_large_message(limit: int) -> str:
    """What a 413 says."""
    return f"the request body is larger than {limit} bytes, the most this server reads (AUTHBRIDGE_MAX_BODY)"


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    errors: typing.Sequence[ErrorItem] = (),
    side: str = "authbridge",
    headers: typing.Mapping[str, str] | None = None,
) -> JSONResponse:
    """The one error shape: ``{"error": {"code", "message", "side", "errors": [{"path", "message"}]}}``."""
    body: dict[str, typing.Any] = {"code": code, "message": message, "side": side}
    if errors:
        body["errors"] = [
            {"path": e.path, "message": e.message, **({"line": e.line} if e.line else {})} for e in errors
        ]
    return JSONResponse({"error": body}, status_code=status, headers=headers)


async def _authbridge_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthBridgeError)
    errors: typing.Sequence[ErrorItem] = getattr(exc, "errors", ())
    message = exc.message.split("\n", 1)[0].rstrip(":") if errors else exc.message
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
    if exc.status_code >= 500:
        logger.error("%s: %s", exc.code, exc.message)
    return error_response(exc.status_code, exc.code, message, errors=errors, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's default handler echoes the offending input, which may be a secret: we do not.
    assert isinstance(exc, RequestValidationError)
    items = [_validation_item(err) for err in exc.errors()]
    return error_response(422, "invalid_request", "the request is not valid", errors=items)


def _validation_item(err: typing.Mapping[str, typing.Any]) -> ErrorItem:
    if err.get("type") == "json_invalid":
        # loc is ("body", character offset); ctx.error is json's own message, which quotes no input.
        position = err["loc"][-1] if len(err["loc"]) > 1 else "?"
        reason = str(err.get("ctx", {}).get("error", "cannot be parsed"))
        return ErrorItem("", f"the body is not valid JSON: {reason} (at character {position})")
    return ErrorItem(".".join(str(p) for p in err["loc"] if p != "body"), str(err["msg"]))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 413:
        # Raised while the body streams in (FastAPI's max_body_size), which puts the limit in the scope.
        message = too_large_message(request.scope.get(MAX_BODY_SIZE_SCOPE_KEY, 0))
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    # Starlette's server-error middleware calls this, then re-raises so the server logs the traceback.
    # The body says nothing about the exception: its text could hold anything.
    return error_response(500, "internal_error", "an unexpected error occurred; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape."""
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_exception_handler(AuthBridgeError, _authbridge_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
