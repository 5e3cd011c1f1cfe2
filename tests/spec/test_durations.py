"""Tests of duration parsing and formatting (``30m``, ``90s``, ``1h30m``, ``250ms``, seconds)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge.spec.durations import format_duration, parse_duration

PARSED = [
    ("30m", timedelta(minutes=30)),
    ("5m", timedelta(minutes=5)),
    ("90s", timedelta(seconds=90)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("250ms", timedelta(milliseconds=250)),
    ("1h", timedelta(hours=1)),
    ("2d", timedelta(days=2)),
    ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
    ("1m30s500ms", timedelta(seconds=90.5)),
    (" 30M ", timedelta(minutes=30)),
    ("0", timedelta(0)),
    ("90", timedelta(seconds=90)),
    ("1.5", timedelta(seconds=1.5)),
    (90, timedelta(seconds=90)),
    (0, timedelta(0)),
    (1.5, timedelta(seconds=1.5)),
    (0.25, timedelta(milliseconds=250)),
    (timedelta(minutes=3), timedelta(minutes=3)),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse_accepts_units_and_seconds(text: object, expected: timedelta) -> None:
    """It reads unit strings, whole and fractional seconds, and timedeltas."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "m", "30x", "1h 30m", "1s1h", "5m5m", "-5m", "1e5", "1.5h", "abc", "30 minutes", "ms", "5sms"],
)
def test_parse_rejects_malformed_strings(text: str) -> None:
    """Malformed strings fail with a message that shows what is accepted."""
    with pytest.raises(ValueError, match=r"expected a duration such as 30m, 90s"):
        parse_duration(text)


@pytest.mark.parametrize("value", [None, True, False, [30], {"m": 30}, float("inf"), float("nan")])
def test_parse_rejects_other_types(value: object) -> None:
    """Booleans, containers, None and non-finite numbers are not durations."""
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [-1, -0.5, "-1", timedelta(seconds=-1)])
def test_parse_rejects_negative_durations(value: object) -> None:
    """A negative duration is refused, whatever its spelling."""
    with pytest.raises(ValueError, match=r"negative|expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [10**30, "99999999999999d", 1e300])
def test_parse_rejects_durations_too_long_for_timedelta(value: object) -> None:
    """Huge values fail with a ValueError (never an OverflowError, which pydantic would not catch)."""
    with pytest.raises(ValueError, match="too long"):
        parse_duration(value)


def test_parse_keeps_milliseconds() -> None:
    """Durations are rounded to the millisecond, the precision the YAML form can write back."""
    assert parse_duration(0.0004) == timedelta(0)
    assert parse_duration(0.1234) == timedelta(milliseconds=123)
    assert parse_duration(timedelta(microseconds=1500)) == timedelta(milliseconds=2)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=30), "30m"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(days=1, seconds=1), "1d1s"),
        (timedelta(0), "0s"),
    ],
)
def test_format_writes_the_shortest_unit_string(value: timedelta, text: str) -> None:
    """It writes units from days down to milliseconds, leaving out zero parts."""
    assert format_duration(value) == text


def test_format_rejects_negative_durations() -> None:
    """A negative timedelta has no written form."""
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@given(st.integers(min_value=0, max_value=10**12))
def test_format_then_parse_round_trips(milliseconds: int) -> None:
    """Every millisecond-precise duration reads back from its written form unchanged."""
    value = timedelta(milliseconds=milliseconds)
    assert parse_duration(format_duration(value)) == value


@given(st.floats(min_value=0, max_value=10**9, allow_nan=False))
def test_parse_then_format_is_stable(seconds: float) -> None:
    """Whatever number was read, writing and reading it again gives the same duration."""
    value = parse_duration(seconds)
    assert parse_duration(format_duration(value)) == value
