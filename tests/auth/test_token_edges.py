"""Token answers off the common paths: Retry-After dates, nested errors, list paths, out-of-range expiries,
token-free extras at any depth, and calls that make no sense."""

from __future__ import annotations

import email.utils
from datetime import timedelta

import pytest

from authbridge.auth import callback_fields, parse_token_response
from authbridge.spec import Integration
from tests.auth.test_tokens import ACCESS, ENDPOINT, NOW, REFRESH, failure, make, parse, response


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (email.utils.format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (email.utils.format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),  # already past: no wait
        ("Sun, 01 Mar 2026 12:01:30", None),  # a date without a zone is not trusted
        ("next tuesday", None),
        ("120", 120.0),
    ],
)
def test_retry_after_as_seconds_or_an_http_date(header: str, expected: float | None) -> None:
    """A 503's Retry-After is read as seconds or as an HTTP date (from now); anything else is no hint."""
    error = failure(response(503, json={"error": "temporarily_unavailable"}, headers={"Retry-After": header}))
    assert error.retry_after == expected


def test_a_nested_error_object_gives_its_code_and_message() -> None:
    """``{"error": {"code": ..., "message": ...}}`` (a common non-OAuth shape) is read as the error and its text."""
    error = failure(response(400, json={"error": {"code": "expired_grant", "message": "the grant expired"}}))
    assert "expired_grant" in str(error) and "the grant expired" in str(error)


def test_paths_index_into_lists() -> None:
    """A dotted path with a number picks a list item; an index past the end finds nothing."""
    integration = make({"access_token": ["tokens.5.value", "tokens.0.value"]})
    tokens = parse(response(json={"tokens": [{"value": ACCESS}]}), integration)
    assert tokens.access_token == ACCESS


@pytest.mark.parametrize(
    ("block", "body", "field"),
    [
        ({"expires_at": {"path": "exp", "format": "unix"}}, {"exp": 10**15}, "exp"),
        ({"expires_in": "ttl"}, {"ttl": 10**13}, "ttl"),
    ],
)
def test_expiries_out_of_range_are_refused(block: dict[str, object], body: dict[str, object], field: str) -> None:
    """An expiry thousands of years away is an unusable answer naming the field, not a token kept forever."""
    error = failure(response(json={"access_token": ACCESS, **body}), make(block))
    assert f"an unusable {field} (out of range)" in str(error)


def test_extras_keep_lists_but_never_tokens() -> None:
    """Extra fields are kept, lists included, without any token-named field at any depth."""
    body = {"access_token": ACCESS, "team": [{"id": "T1", "access_token": "nested-at-secret"}, "plain"]}
    tokens = parse(response(json=body))
    assert tokens.extra == {"team": [{"id": "T1"}, "plain"]}
    assert "nested-at-secret" not in str(tokens.extra)


def test_an_integration_without_a_token_endpoint_is_a_type_error() -> None:
    """Parsing a token answer for an API-token integration is a programming error, said plainly."""
    static = Integration.model_validate({"key": "static", "name": "S", "auth": {"type": "api_token"}})
    with pytest.raises(TypeError, match="integration static does not use a token endpoint"):
        parse_token_response(static, response(json={"access_token": ACCESS}), now=NOW, endpoint=ENDPOINT)
    assert callback_fields(static, {"code": "c", "state": "s"}) == {}


def test_now_must_carry_a_time_zone() -> None:
    """A naive ``now`` is refused (expiry times are UTC)."""
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        parse_token_response(
            make(),
            response(json={"access_token": ACCESS}),
            now=NOW.replace(tzinfo=None),
            endpoint=ENDPOINT,
        )


def test_the_previous_refresh_token_is_kept_when_none_comes_back() -> None:
    """An answer without a refresh token keeps the one the refresh used."""
    assert parse(response(json={"access_token": ACCESS}), previous_refresh_token=REFRESH).refresh_token == REFRESH
