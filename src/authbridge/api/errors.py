"""AuthBridgeError (and FastAPI's own validation errors) → a JSON problem response. No secrets."""

from __future__ import annotations

import logging
import typing

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from authbridge.errors import AuthBridgeError, AuthenticationError, ErrorItem

__all__ = ["ErrorResponse", "error_response", "errors", "install_error_handlers", "too_large_message"]

logger = logging.getLogger("authbridge.api")


class _ErrorItem(BaseModel):
    path: str = Field(description="Where the problem is: a dotted field path, or empty for the whole input.")
    message: str
    line: int | None = Field(default=None, description="The YAML line, when the input was YAML.")


class _ErrorBody(BaseModel):
    code: str = Field(description="A stable, machine-readable code, e.g. not_found, invalid_spec, unauthenticated.")
    message: str = Field(description="What went wrong, for people; never holds a secret.")
    side: str = Field(description="Whose fault: authbridge (this server or the request) or upstream (a provider).")
    errors: list[_ErrorItem] | None = Field(default=None, description="Every problem, when there are several.")


class ErrorResponse(BaseModel):
    """The one error shape every API route answers with."""

    error: _ErrorBody


_WHY = {
    400: "The request cannot be used as it is (e.g. a malformed filter).",
    401: "No API key, or not a valid one (`WWW-Authenticate: Bearer`).",
    403: "The API key lacks the scope this route needs.",
    404: "No such resource.",
    409: "The resource's state forbids this (a key taken, a connection needing re-authorization...).",
    413: "The request body is over AUTHBRIDGE_MAX_BODY.",
    422: "The request is not valid: every problem is listed in `errors`.",
    500: "An unexpected error; the server log has the details.",
    502: "A provider failed or could not be reached (`side: upstream`).",
    503: "The database is unavailable.",
}

#: What every route that takes an API key may answer besides its own errors.
_KEYED = (401, 403, 413, 422, 500, 503)


def errors(*statuses: int, keyed: bool = True) -> dict[int | str, dict[str, typing.Any]]:
    """The ``responses=`` of a route: each status with the error shape (plus the key's errors when ``keyed``)."""
    every = sorted({*statuses, *(_KEYED if keyed else (500,))})
    return {status: {"model": ErrorResponse, "description": _WHY[status]} for status in every}


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


#: FastAPI's detail when a JSON body cannot be decoded at all (fastapi/routing.py).
_UNPARSABLE = "There was an error parsing the body"
_NOT_JSON = ErrorItem("", "the body is not valid JSON: it is not UTF-8 text")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSABLE:
        # FastAPI's answer to a JSON body it cannot decode (not UTF-8): the same 422 as any other invalid JSON.
        return error_response(422, "invalid_request", "the request is not valid", errors=[_NOT_JSON])
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
