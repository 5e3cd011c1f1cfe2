"""``insufficient_scope``: which 403 challenges ask for more scopes, and which are refused (pure).

End to end (proxy, bridge, reconnect, connect session): ``tests/api/test_mcp_step_up.py``.
"""

from __future__ import annotations

import pytest

from authbridge.auth.lifecycle import MAX_WANTED_SCOPES, StepUp, insufficient_scope


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (403, 'Bearer error="insufficient_scope", scope="read write"', StepUp(("read", "write"))),
        (403, 'Bearer realm="x", error=insufficient_scope, scope="files:read files:read"', StepUp(("files:read",))),
        (403, 'Bearer error="invalid_token", error_description="insufficient_scope is not this"', None),
        (401, 'Bearer error="insufficient_scope", scope="read"', None),
        (403, None, None),
        (403, 'Bearer error="insufficient_scope"', StepUp((), "it names no scope")),
        (
            403,
            'Bearer error="insufficient_scope", scope="a  b"',
            StepUp((), "its scope is not a list of RFC 6749 scope tokens"),
        ),
        (
            403,
            'Bearer error="insufficient_scope", scope="caf\u00e9"',
            StepUp((), "its scope is not a list of RFC 6749 scope tokens"),
        ),
        (
            403,
            'Bearer error="insufficient_scope", scope="' + "x" * 201 + '"',
            StepUp((), "its scope is not a list of RFC 6749 scope tokens"),
        ),
    ],
)
def test_insufficient_scope(status: int, header: str | None, expected: StepUp | None) -> None:
    """Only a 403 whose challenge's error is insufficient_scope; its scope must be RFC 6749 tokens."""
    assert insufficient_scope(status, header) == expected


def test_bounds() -> None:
    """At most MAX_WANTED_SCOPES scopes, in a challenge of at most 4096 characters."""
    many = " ".join(f"s{i}" for i in range(MAX_WANTED_SCOPES + 1))
    assert insufficient_scope(403, f'Bearer error="insufficient_scope", scope="{many}"') == StepUp(
        (), f"it names more than {MAX_WANTED_SCOPES} scopes"
    )
    exactly = " ".join(f"s{i}" for i in range(MAX_WANTED_SCOPES))
    assert len(insufficient_scope(403, f'Bearer error="insufficient_scope", scope="{exactly}"').scopes) == 32  # type: ignore[union-attr]
    huge = 'Bearer error="insufficient_scope", scope="' + "a" * 5000 + '"'
    assert insufficient_scope(403, huge) == StepUp((), "its challenge is longer than 4096 characters")
