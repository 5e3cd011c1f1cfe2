"""What a hook may return as credentials: expiry as a datetime, a timestamp, seconds or nothing; and a hook that
raises the upstream's own error keeps it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authbridge.auth.hooks import call_hook, token_set_from_credentials
from authbridge.errors import UpstreamError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"expires_at": datetime(2026, 3, 1, 13, 0)}, datetime(2026, 3, 1, 13, 0, tzinfo=UTC)),  # naive: UTC  # noqa: DTZ001
        ({"expires_at": datetime(2026, 3, 1, 14, 0, tzinfo=UTC)}, datetime(2026, 3, 1, 14, 0, tzinfo=UTC)),
        ({"expires_at": NOW.timestamp() + 60}, NOW + timedelta(seconds=60)),
        ({"expires_in": "90"}, NOW + timedelta(seconds=90)),
        ({}, None),
    ],
)
def test_expiry_forms(fields: dict[str, object], expected: datetime | None) -> None:
    """A datetime (naive ones are UTC), a Unix timestamp, seconds from now (even as digits), or no expiry."""
    tokens = token_set_from_credentials({"access_token": "at-1", **fields}, now=NOW, integration="i")
    assert tokens.expires_at == expected


async def test_a_hook_raising_an_upstream_error_keeps_its_message() -> None:
    """A hook may raise UpstreamError itself: that error goes on as it is, not wrapped as "the hook failed"."""

    def hook() -> None:
        raise UpstreamError("crm: the provider said the account is locked", integration="crm")

    with pytest.raises(UpstreamError, match=r"^crm: the provider said the account is locked$"):
        await call_hook(hook, integration="crm", name="get_token_data")
