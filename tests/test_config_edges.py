"""Durations in the environment: a number of seconds in (0, 600], or a clear error naming the variable."""

from __future__ import annotations

import re

import pytest

from authbridge.config import Settings
from authbridge.errors import ConfigError


@pytest.mark.parametrize("raw", ["soon", "0", "-5", "601", "nan"])
def test_a_bad_timeout_names_the_variable_and_the_range(raw: str) -> None:
    """Not a number, zero, negative or over ten minutes: refused with the variable, its value and the range."""
    with pytest.raises(
        ConfigError,
        match=re.escape(f"AUTHBRIDGE_HTTP_TIMEOUT has value {raw!r}: use a number of seconds between 0 and 600"),
    ):
        Settings.from_env({"AUTHBRIDGE_HTTP_TIMEOUT": raw})


@pytest.mark.parametrize(("raw", "expected"), [("", 10.0), ("2.5", 2.5), ("600", 600.0)])
def test_a_good_timeout_is_taken(raw: str, expected: float) -> None:
    """Empty means the default; any number of seconds up to 600 is taken as given."""
    assert Settings.from_env({"AUTHBRIDGE_HTTP_TIMEOUT": raw}).http_timeout == expected
