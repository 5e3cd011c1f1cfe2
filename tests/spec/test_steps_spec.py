"""Validation of ``auth.steps`` (multi-step token requests) when a spec is loaded.

The flow itself: ``tests/auth/test_steps.py``; end to end: ``tests/api/test_token_steps_e2e.py``.
"""

from __future__ import annotations

import typing

import pytest

from authbridge.errors import SpecError
from authbridge.spec import CustomTokenAuth, dump_spec, load_spec, validate_spec

NONCE = {"name": "nonce", "url": "https://acme.example/nonce", "capture": {"nonce": "data.nonce"}}
LOGIN = {"name": "login", "url": "https://acme.example/login", "headers": {"X-Nonce": "{captured.nonce}"}}


def spec(*steps: dict[str, typing.Any], **auth: typing.Any) -> dict[str, typing.Any]:
    return {
        "key": "acme",
        "name": "Acme",
        "parameters": [{"name": "tenant"}],
        "auth": {"type": "custom_token", "steps": list(steps), **auth},
    }


def problems(data: dict[str, typing.Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        validate_spec(data)
    return [f"{item.path}: {item.message}" for item in info.value.errors]


def test_steps_replace_token_url_and_round_trip() -> None:
    """A custom token with steps needs no token_url; it dumps and loads back the same."""
    integration = validate_spec(spec(NONCE, LOGIN))
    assert isinstance(integration.auth, CustomTokenAuth)
    assert integration.auth.captured_names == {"nonce"}
    assert integration.auth.steps[0].capture["nonce"].source == ("json", "data.nonce")
    assert load_spec(dump_spec(integration)) == integration


def test_a_capture_is_usable_only_after_its_step() -> None:
    """A step cannot use what it or a later step captures; other fields cannot use captures at all."""
    found = problems(
        {
            **spec({**NONCE, "params": {"n": "{captured.nonce}"}}, LOGIN),
            "request": {"headers": {"X": "{captured.nonce}"}},
        }
    )
    assert "auth.steps.0.params.n: references {captured.nonce}, which no earlier token step captures" in found[0]
    assert any(p.startswith("request.headers.X: references {captured.nonce}") for p in found)


@pytest.mark.parametrize(
    "url",
    ["https://{captured.nonce}.acme.example/login", "{captured.nonce}/login", "https://acme.example:{captured.nonce}/"],
    ids=["host", "whole", "port"],
)
def test_a_capture_never_chooses_where_the_next_step_goes(url: str) -> None:
    """A captured value may go in the path or query of a later step's URL, never its host, port or whole URL."""
    found = problems(spec(NONCE, {**LOGIN, "url": url}))
    assert any(p.startswith("auth.steps.1.url") for p in found), found


def test_a_capture_in_the_path_and_query_is_accepted() -> None:
    """Path and query are percent-encoded: a capture there cannot move the request."""
    validate_spec(spec(NONCE, {**LOGIN, "url": "https://acme.example/login/{captured.nonce}?n={captured.nonce}"}))


@pytest.mark.parametrize(
    ("steps", "auth", "expected"),
    [
        ([NONCE, LOGIN], {"token_url": "https://acme.example/t"}, "token_url: a custom token with steps"),
        ([NONCE, LOGIN], {"token_params": {"a": "b"}}, "token_params: a custom token with steps"),
        ([NONCE, {**NONCE, "capture": {}}], {}, "two steps are named nonce"),
        ([NONCE, {**LOGIN, "capture": {"nonce": "x"}}], {}, "nonce is captured by an earlier step too"),
        ([{**NONCE, "capture": {"nonce": {"json": "a", "header": "X-A"}}}], {}, "give exactly one of json"),
        ([{**NONCE, "capture": {"nonce": {"pattern": "a"}}}], {}, "give exactly one of json"),
        ([{**NONCE, "capture": {"nonce": {"header": "X A"}}}], {}, "is not a valid HTTP header name"),
        ([{**NONCE, "capture": {"nonce": {"json": "a", "pattern": "(?=a)"}}}], {}, "not a valid regular expression"),
        ([{**NONCE, "capture": {"no-nce": "a"}}], {}, "must be letters, digits and '_'"),
        ([{**NONCE, "name": "1st"}], {}, "must be letters, digits and '_'"),
        ([{**NONCE, "headers": {"Bad Header": "x"}}], {}, "auth.steps.0.headers.Bad Header: is not a valid HTTP"),
        ([{**NONCE, "expect_status": 500}], {}, "must be at most 399"),
        ([NONCE] * 9, {}, "at most 8"),
    ],
    ids=[
        "token-url",
        "token-params",
        "same-name",
        "same-capture",
        "two-sources",
        "no-source",
        "header-name",
        "pattern",
        "capture-name",
        "step-name",
        "step-header",
        "expect-5xx",
        "too-many",
    ],
)
def test_malformed_steps_are_refused_at_load(
    steps: list[dict[str, typing.Any]], auth: dict[str, typing.Any], expected: str
) -> None:
    """Each mistake is reported with its field when the spec is loaded."""
    found = problems(spec(*steps, **auth))
    assert any(expected in p for p in found), found


def test_jwt_is_usable_only_in_a_step_that_signs_one() -> None:
    """``{jwt}`` in a step without a ``jwt`` block is an unknown reference; with one it is accepted."""
    found = problems(spec({**NONCE, "headers": {"Authorization": "Bearer {jwt}"}}))
    assert any("auth.steps.0.headers.Authorization: references {jwt}" in p for p in found), found
    signed = {
        **NONCE,
        "jwt": {"key": "{key}", "claims": {"iss": "{tenant}"}},
        "headers": {"Authorization": "Bearer {jwt}"},
    }
    validate_spec({**spec(signed), "parameters": [{"name": "tenant"}, {"name": "key", "secret": True}]})
    unsafe = {**signed, "jwt": {"key": "{tenant}"}}
    found = problems(spec(unsafe))
    assert any(p.startswith("auth.steps.0.jwt.key: {tenant} holds a key") for p in found), found


def test_without_steps_a_token_url_is_still_required() -> None:
    """A custom token with neither steps nor token_url is refused."""
    assert "auth.token_url: is required for custom_token" in problems(spec())
