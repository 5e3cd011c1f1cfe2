"""Small public behaviours: the package's lazy SDK names, and redaction of a log record's stack."""

from __future__ import annotations

import logging

import pytest

import authbridge
from authbridge.redact import RedactingFilter


def test_unknown_package_attributes_fail_like_any_module() -> None:
    """``authbridge.<unknown>`` is a plain AttributeError; the lazy SDK names are listed by dir()."""
    with pytest.raises(AttributeError, match="module 'authbridge' has no attribute 'Brige'"):
        _ = authbridge.Brige
    assert {"AuthBridgeClient", "AsyncAuthBridgeClient", "Bridge"} <= set(dir(authbridge))


def test_a_records_stack_is_redacted_too() -> None:
    """A log record logged with its stack (``stack_info=True``) has secrets in that stack masked."""
    record = logging.LogRecord(
        "authbridge", logging.WARNING, __file__, 1, "refreshing", None, None, sinfo="Stack:\n  access_token=AT-stack-9"
    )
    assert RedactingFilter().filter(record)
    assert record.stack_info is not None
    assert "AT-stack-9" not in record.stack_info and "access_token=***" in record.stack_info
