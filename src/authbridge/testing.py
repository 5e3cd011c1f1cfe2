"""Public test helpers: a fake clock and an in-memory key ring. Never imported by ``src/`` code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from authbridge.store.crypto import KeyRing, generate_key

__all__ = ["FakeClock", "memory_key_ring"]


class FakeClock:
    """A clock that moves only when told to.

    ```
    clock = FakeClock()
    clock.advance(minutes=31)
    ```
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward by ``timedelta(**delta)``; return the new time."""
        self.now += timedelta(**delta)
        return self.now


def memory_key_ring(*kids: str) -> KeyRing:
    """A key ring of freshly generated keys (the first is active)."""
    return KeyRing([generate_key(kid) for kid in (kids or ("test",))])
