"""The refresh rules as pure functions (the broker's tests drive them end to end)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from authbridge.auth.lifecycle import backoff_delay, effective_window, is_refresh_due, refresh_on_rejection
from authbridge.spec import RefreshPolicy

NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = RefreshPolicy()


def test_default_window_is_thirty_minutes() -> None:
    """A one-hour token is refreshed when it has 30 minutes left, not before."""
    obtained = NOW
    expires = NOW + timedelta(hours=1)
    assert not is_refresh_due(POLICY, expires_at=expires, obtained_at=obtained, now=NOW + timedelta(minutes=29))
    assert is_refresh_due(POLICY, expires_at=expires, obtained_at=obtained, now=NOW + timedelta(minutes=30))


def test_short_token_window_is_half_its_lifetime() -> None:
    """A 5-minute token is refreshed at 2.5 minutes left, not on every call."""
    expires = NOW + timedelta(minutes=5)
    assert effective_window(POLICY, timedelta(minutes=5)) == timedelta(minutes=2, seconds=30)
    assert not is_refresh_due(POLICY, expires_at=expires, obtained_at=NOW, now=NOW)
    assert not is_refresh_due(POLICY, expires_at=expires, obtained_at=NOW, now=NOW + timedelta(minutes=2, seconds=29))
    assert is_refresh_due(POLICY, expires_at=expires, obtained_at=NOW, now=NOW + timedelta(minutes=2, seconds=30))


def test_exactly_twice_the_window_keeps_the_window() -> None:
    """A token living exactly twice the window keeps the configured window."""
    assert effective_window(POLICY, timedelta(hours=1)) == timedelta(minutes=30)
    assert effective_window(POLICY, None) == timedelta(minutes=30)


def test_no_expiry_is_never_due() -> None:
    """A token without a known expiry is refreshed only on rejection."""
    assert not is_refresh_due(POLICY, expires_at=None, obtained_at=NOW, now=NOW + timedelta(days=400))


def test_unknown_obtained_time_uses_the_window() -> None:
    """Without the obtained time the configured window applies."""
    assert is_refresh_due(POLICY, expires_at=NOW + timedelta(minutes=10), obtained_at=None, now=NOW)


def test_custom_window() -> None:
    """A spec's own window is used."""
    policy = RefreshPolicy.model_validate({"window": "5m"})
    expires = NOW + timedelta(hours=1)
    assert not is_refresh_due(policy, expires_at=expires, obtained_at=NOW, now=NOW + timedelta(minutes=54))
    assert is_refresh_due(policy, expires_at=expires, obtained_at=NOW, now=NOW + timedelta(minutes=55))


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (401, None, True),
        (403, None, True),
        (403, 'Bearer error="insufficient_scope", scope="admin"', False),
        (401, 'Bearer error="invalid_token"', True),
        (404, None, False),
        (500, None, False),
    ],
)
def test_refresh_on_rejection(status: int, header: str | None, expected: bool) -> None:
    """401/403 trigger a refresh, except a 403 for insufficient scope; other statuses never do."""
    assert refresh_on_rejection(POLICY, status, header) is expected


def test_on_status_is_configurable() -> None:
    """``on_status`` decides which answers trigger a refresh."""
    policy = RefreshPolicy.model_validate({"on_status": [401, 419]})
    assert refresh_on_rejection(policy, 419) and not refresh_on_rejection(policy, 403)


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    """Delays grow exponentially within [ceiling/2, ceiling], capped at 30 minutes."""
    rng = random.Random(7)
    for failures, ceiling in [(1, 10), (2, 20), (3, 40), (10, 1800), (30, 1800)]:
        for _ in range(50):
            delay = backoff_delay(failures, rng=rng).total_seconds()
            assert ceiling / 2 <= delay <= ceiling


def test_backoff_honours_retry_after() -> None:
    """A Retry-After longer than the computed delay wins."""
    assert backoff_delay(1, retry_after=120, rng=random.Random(1)) == timedelta(seconds=120)
    assert backoff_delay(1, retry_after=1, rng=random.Random(1)).total_seconds() >= 5
