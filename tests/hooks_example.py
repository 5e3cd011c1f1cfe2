"""Hooks used by the tests (``AUTHBRIDGE_HOOK_MODULES=tests.hooks_example``): Integration.app's methods in Python."""

from __future__ import annotations

import typing

from authbridge.auth.hooks import HookContext

CALLS: list[str] = []


async def get_token_data(ctx: HookContext) -> dict[str, typing.Any]:
    """Log in at the custom endpoint with the user's inputs, and answer like an OAuth token endpoint."""
    CALLS.append("get_token_data")
    response = await ctx.http.post(
        ctx.parameters["loginUrl"], json={"user": ctx.inputs["username"], "password": ctx.inputs["password"]}
    )
    response.raise_for_status()
    data = response.json()["data"]
    return {"access_token": data["sessionToken"], "expires_in": data["validSeconds"], "tenant": "t-42"}


def credentials_from_token_response(ctx: HookContext, token_response: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """Keep the token, add a field of our own (sync hooks work too)."""
    CALLS.append("credentials_from_token_response")
    return {**token_response, "userName": "alice (from hook)"}


async def refresh_credentials(ctx: HookContext) -> dict[str, typing.Any]:
    """Log in again; the result is merged over the current credentials."""
    CALLS.append("refresh_credentials")
    return await get_token_data(ctx)


async def test(ctx: HookContext) -> str:
    """Call /api/me with the session token."""
    CALLS.append("test")
    response = await ctx.http.get(ctx.parameters["meUrl"], headers={"X-Session-Token": ctx.credentials["access_token"]})
    if response.status_code != 200:
        raise RuntimeError("not ok")
    return f"hello {response.json()['sub']}"


def broken(ctx: HookContext) -> dict[str, typing.Any]:
    """A hook that fails with a message holding a secret; AuthBridge must not repeat it."""
    raise ValueError(f"boom with {ctx.inputs.get('password')}")
