"""Multi-step token requests: ordered requests, each capturing values of its answer for the next.

A ``custom_token`` integration with ``auth.steps`` sends each step in turn. A step's ``capture``
names values of its answer (a JSON path, a header, a form field, a cookie); later steps use them as
``{captured.<name>}`` in their url, headers and params, and ``token_response`` may name them
(``access_token: captured.session``). The last step's answer is the token response. A step with a
``jwt`` block signs that JWT first (a GitHub App's app JWT) and uses it as ``{jwt}``.

Every captured value is treated as a secret: it is scrubbed from every message and never stored
(only what ``token_response`` maps from it is). A step that fails says which step and why:

```
acme: step 2 (login): token endpoint https://acme.example/login answered 401 invalid_nonce
```
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from collections.abc import Callable
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl

import httpx

from authbridge.auth.base import AuthContext, TokenSet, endpoint_text
from authbridge.auth.jwt import mint_jwt
from authbridge.auth.requests import step_request
from authbridge.auth.tokens import check_token_value, lookup
from authbridge.errors import TokenEndpointError, UpstreamError
from authbridge.redact import scrub
from authbridge.spec import CustomTokenAuth
from authbridge.spec.models import StepCapture, TokenStep, compile_pattern

if typing.TYPE_CHECKING:
    from authbridge.auth.plugin import TokenFlow

__all__ = ["MAX_CAPTURE_LENGTH", "ReadToken", "step_flow"]

#: The longest value a step may capture (a nonce, a session id, a signed cookie).
MAX_CAPTURE_LENGTH = 8192
#: Reads the last answer into tokens (the plugin's ``read_token``).
ReadToken = Callable[[AuthContext, httpx.Response, str, tuple[str, ...]], TokenSet]


def _label(index: int, step: TokenStep) -> str:
    return f"step {index + 1} ({step.name})"


def _renamed(exc: UpstreamError, key: str, label: str, secrets: tuple[str, ...]) -> UpstreamError:
    """The same failure, its message naming the step, captured values scrubbed (a nonce in a URL path)."""
    text = scrub(exc.message, secrets).removeprefix(f"{key}: ")
    message = f"{key}: {label}: {text}"
    endpoint = scrub(exc.endpoint, secrets) if exc.endpoint else None
    if isinstance(exc, TokenEndpointError):
        return TokenEndpointError(
            message,
            integration=key,
            endpoint=endpoint,
            error=exc.error,
            status=exc.status,
            permanent=exc.permanent,
            retry_after=exc.retry_after,
        )
    return UpstreamError(message, integration=key, endpoint=endpoint)


def _failure(key: str, label: str, endpoint: str, status: int, what: str) -> TokenEndpointError:
    return TokenEndpointError(
        f"{key}: {label}: token endpoint {endpoint} answered {what} (status {status})",
        integration=key,
        endpoint=endpoint,
        status=status,
    )


def _succeeded(step: TokenStep, status: int) -> bool:
    return status in step.expect_status if step.expect_status else 200 <= status < 300


def _json_value(response: httpx.Response, path: str) -> object:
    try:
        data: object = json.loads(response.content.decode("utf-8-sig"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return lookup(data, path)


def _cookie(response: httpx.Response, name: str) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        jar = SimpleCookie()
        jar.load(header)  # lenient: what it cannot parse it leaves out
        if name in jar:
            return jar[name].value
    return None


def _found(response: httpx.Response, capture: StepCapture) -> object:
    kind, name = capture.source
    if kind == "json":
        return _json_value(response, name)
    if kind == "header":
        return response.headers.get(name)
    if kind == "form":
        try:
            pairs = parse_qsl(response.content.decode("utf-8"), keep_blank_values=True, max_num_fields=1000)
        except ValueError:
            return None
        return dict(pairs).get(name)
    return _cookie(response, name)


def _captures(step: TokenStep, response: httpx.Response, fail: Callable[[str], TokenEndpointError]) -> dict[str, str]:
    """The step's captured values; TokenEndpointError naming the capture (never its value) when one is unusable."""
    values: dict[str, str] = {}
    for name, capture in step.capture.items():
        kind, where = capture.source
        value = _found(response, capture)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            raise fail(f"no {kind} {where} to capture as {name}")
        problem = check_token_value(value)
        if problem is None and len(value) > MAX_CAPTURE_LENGTH:
            problem = f"it is over {MAX_CAPTURE_LENGTH} characters"
        if problem is None and capture.pattern is not None and not compile_pattern(capture.pattern).fullmatch(value):
            problem = "it does not match its pattern"
        if problem:
            raise fail(f"an unusable {name} ({problem})")
        values[name] = value
    return values


def _uses_captures(auth: CustomTokenAuth) -> bool:
    spec = auth.token_response
    paths = [*spec.access_token, *spec.refresh_token]
    paths += [spec.expires_in.path] if spec.expires_in else []
    paths += [spec.expires_at.path] if spec.expires_at else []
    return any(path.startswith("captured.") for path in paths)


def _token_answer(auth: CustomTokenAuth, response: httpx.Response, captured: dict[str, str]) -> httpx.Response:
    """The answer ``token_response`` reads: the last one, with the captures under ``captured`` when it names them."""
    if not _uses_captures(auth) or not _succeeded(auth.steps[-1], response.status_code):
        return response
    try:
        data = json.loads(response.content.decode("utf-8-sig")) if response.content else {}
    except (ValueError, RecursionError):
        data = {}  # a login answering HTML with its cookie: the token is the capture
    merged = {**(data if isinstance(data, dict) else {}), "captured": captured}
    return httpx.Response(200, json=merged, request=response.request)


def _without_captures(tokens: TokenSet) -> TokenSet:
    """The tokens without the ``captured`` block (its values are secret and not kept)."""
    extra = {k: v for k, v in tokens.extra.items() if k != "captured"}
    raw = {k: v for k, v in tokens.raw.items() if k != "captured"}
    return dataclasses.replace(tokens, extra=extra, raw=raw)


def step_flow(ctx: AuthContext, read_token: ReadToken) -> TokenFlow:
    """The token flow of ``auth.steps``: send each step, capture, and read the last answer into tokens.

    Raises (from the generator):
        TokenEndpointError: a step answered a status it does not expect, or lacks a value to capture;
            the message names the step (``step 2 (login)``), its endpoint and status, never a value.
        UpstreamError: a step could not be sent or read (thrown in by the broker); renamed per step.
        TemplateError: a step's template cannot be rendered (the message names ``auth.steps.N``).
    """
    auth = ctx.integration.auth
    if not isinstance(auth, CustomTokenAuth) or not auth.steps:
        raise TypeError(f"integration {ctx.integration.key} has no token steps")
    key = ctx.integration.key
    captured: dict[str, str] = {}
    for index, step in enumerate(auth.steps):
        label = _label(index, step)
        step_ctx = dataclasses.replace(ctx, captured=dict(captured))
        jwt = None
        if step.jwt is not None:
            values = {f"captured.{name}": value for name, value in captured.items()}
            jwt = mint_jwt(step_ctx, step.jwt, field=f"auth.steps.{index}.jwt", values=values).token
        request = step_request(step_ctx, step, field=f"auth.steps.{index}", jwt=jwt)
        secrets = step_ctx.secrets(jwt)
        endpoint = endpoint_text(request.url, secrets)
        try:
            response = yield request
        except UpstreamError as exc:
            raise _renamed(exc, key, label, secrets) from None
        status = response.status_code

        fail = functools.partial(_failure, key, label, endpoint, status)
        if not _succeeded(step, status):
            if not response.is_success:  # the token answer's reader says why (error code, description, scrubbed)
                try:
                    read_token(step_ctx, response, endpoint, secrets)
                except TokenEndpointError as exc:
                    raise _renamed(exc, key, label, secrets) from None
            expected = ", ".join(str(code) for code in step.expect_status) if step.expect_status else "2xx"
            raise fail(f"a status it does not expect (expected {expected})")
        captured.update(_captures(step, response, fail))
    last_ctx = dataclasses.replace(ctx, captured=dict(captured))
    secrets = last_ctx.secrets()
    answer = _token_answer(auth, response, captured)
    try:
        tokens = read_token(last_ctx, answer, endpoint, secrets)
    except TokenEndpointError as exc:
        raise _renamed(exc, key, _label(len(auth.steps) - 1, auth.steps[-1]), secrets) from None
    return _without_captures(tokens)
