"""Redaction of secrets from log lines and messages: a logging filter and the function behind it."""

from __future__ import annotations

import logging
import re

__all__ = ["SENSITIVE_NAMES", "RedactingFilter", "redact"]

#: Query or form field names whose values never appear in logs.
SENSITIVE_NAMES = (
    "code",
    "state",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
    "api_key",
    "apikey",
    "key",
    "code_verifier",
    "assertion",
)
# A sensitive name; names ending in token/secret/password/... count too (`private_token`,
# `client_assertion`, `apiSecret`), but not every word ending in "code" or "key" (`barcode`, `monkey`).
_SUFFIXES = r"token|secret|password|passwd|pwd|assertion|apikey|api_key|verifier"
_FIELD = re.compile(
    r"(?i)(?<![A-Za-z0-9_\-])((?:"
    + "|".join(SENSITIVE_NAMES)
    + r")|[A-Za-z0-9_\-]*(?:"
    + _SUFFIXES
    + r"))=([^&\s\"']+)"
)
_BEARER = re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/=]+")
# API keys (ab_...) and connect-session tokens (abcs_...): the prefix stays, so a reader knows what it was.
_API_KEY = re.compile(r"\b(ab_|abcs_)[A-Za-z0-9_\-]{20,}")
# "name": "value" (JSON) and 'name': 'value' (a Python dict's repr); escaped quotes stay inside the value.
_JSON_FIELD = re.compile(
    r"(?i)(([\"'])(?:" + "|".join(SENSITIVE_NAMES) + r")\2\s*:\s*([\"']))((?:(?!\3)[^\\]|\\.)*)(\3)"
)


def redact(text: str) -> str:
    """Replace token-looking values (query/form fields, JSON fields, Bearer values, API keys) by ``***``."""
    text = _FIELD.sub(r"\1=***", text)
    text = _JSON_FIELD.sub(r"\1***\5", text)
    text = _BEARER.sub(r"\1 ***", text)
    return _API_KEY.sub(r"\1***", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message (and uvicorn's access-log arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # Logging would print the raw message and arguments when formatting fails: show them redacted.
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
