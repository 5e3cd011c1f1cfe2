"""The JSON log format and the X-Request-ID rule; through a real server: tests/api/test_logs_e2e.py."""

from __future__ import annotations

import contextvars
import json
import logging
import sys

import pytest

from authbridge.logs import CONNECTION_ID, INTEGRATION, REQUEST_ID, JsonFormatter, request_id_of
from authbridge.redact import RedactingFilter


@pytest.mark.parametrize("value", [b"req-1", b"0f3a:b/c+d=e@f_g.h", b"x" * 128])
def test_a_safe_request_id_is_kept(value: bytes) -> None:
    """Up to 128 characters from a small safe set are kept as given."""
    assert request_id_of([(b"accept", b"*/*"), (b"x-request-id", value)]) == value


@pytest.mark.parametrize("value", [b"", b"x" * 129, b"a b", b'a"b', b"a\\nb", "é".encode(), b"a;b"])
def test_an_unsafe_request_id_is_replaced(value: bytes) -> None:
    """Anything else (empty, too long, spaces, quotes, non-ASCII) gets a generated id instead."""
    generated = request_id_of([(b"x-request-id", value)])
    assert generated != value and len(generated) == 32 and int(generated, 16) >= 0


def test_each_request_without_one_gets_a_new_id() -> None:
    """Generated ids differ."""
    assert request_id_of([]) != request_id_of([])


def _format(record: logging.LogRecord) -> dict[str, object]:
    RedactingFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert isinstance(entry, dict)
    return entry


def test_the_json_line_has_the_context_and_redacts_every_field() -> None:
    """Context fields come from the context variables; secrets in them, the message or a traceback are masked."""

    def log() -> dict[str, object]:
        REQUEST_ID.set("ab_" + "R" * 30)
        CONNECTION_ID.set("conn-1")
        INTEGRATION.set("crm")
        try:
            raise ValueError("failed with access_token=SECRET1\nsecond line")
        except ValueError:
            record = logging.getLogger("authbridge.test").makeRecord(
                "authbridge.test", logging.ERROR, __file__, 1, "call %s", ("?token=SECRET2",), sys.exc_info()
            )
        return _format(record)

    entry = contextvars.copy_context().run(log)
    assert entry["level"] == "error" and entry["logger"] == "authbridge.test"
    assert entry["message"] == "call ?token=***"
    assert (entry["request_id"], entry["connection_id"], entry["integration"]) == ("ab_***", "conn-1", "crm")
    assert "SECRET" not in json.dumps(entry)
    assert "access_token=***" in str(entry["exception"])


def test_outside_a_request_the_context_fields_are_null() -> None:
    """Lines of the server itself (start, stop) carry null context fields."""
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started", None, None)
    entry = contextvars.Context().run(_format, record)
    assert (entry["request_id"], entry["connection_id"], entry["integration"]) == (None, None, None)
