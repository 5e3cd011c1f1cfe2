"""Durations written as ``30m``, ``5m``, ``90s``, ``1h30m``, ``250ms`` or plain seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta

__all__ = ["format_duration", "parse_duration"]

# Units from the largest down, each at most once: ``1d2h30m15s250ms``.
_TEXT = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?")
_SECONDS = re.compile(r"\d+(?:\.\d+)?")
_UNIT_MS = (86_400_000, 3_600_000, 60_000, 1000, 1)
_MAX_MS = (timedelta.max // timedelta(milliseconds=1)) // 2
_ACCEPTED = "expected a duration such as 30m, 90s, 1h30m, 250ms or a number of seconds"


def _from_ms(total_ms: int) -> timedelta:
    if total_ms > _MAX_MS:
        raise ValueError("is too long to be a duration")
    return timedelta(milliseconds=total_ms)


def parse_duration(value: object) -> timedelta:
    """Parse ``30m``, ``90s``, ``1h30m``, ``250ms`` or a number of seconds into a timedelta.

    Durations are kept to the millisecond, so that ``format_duration`` writes back exactly what was read.

    Raises:
        ValueError: with a message that says what is accepted.
    """
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError("a duration cannot be negative")
        return _from_ms(round(value / timedelta(milliseconds=1)))
    if isinstance(value, bool):
        raise ValueError(_ACCEPTED)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(_ACCEPTED)
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _from_ms(round(value * 1000))
    if isinstance(value, str):
        text = value.strip().lower()
        if _SECONDS.fullmatch(text):
            return parse_duration(float(text))
        match = _TEXT.fullmatch(text)
        if text and match:
            counts = (int(n) if n else 0 for n in match.groups())
            return _from_ms(sum(count * size for count, size in zip(counts, _UNIT_MS, strict=True)))
    raise ValueError(_ACCEPTED)


def format_duration(value: timedelta) -> str:
    """Write a timedelta the way a person would in YAML: ``30m``, ``90s``, ``1h30m``, ``1m500ms``."""
    remaining = round(value / timedelta(milliseconds=1))
    if remaining < 0:
        raise ValueError("a duration cannot be negative")
    if remaining == 0:
        return "0s"
    parts = []
    for unit, size in zip(("d", "h", "m", "s", "ms"), _UNIT_MS, strict=True):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
