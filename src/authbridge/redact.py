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
_FIELD = re.compile(r"(?i)(?<![A-Za-z0-9_])(" + "|".join(SENSITIVE_NAMES) + r")=([^&\s\"']+)")
_BEARER = re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/=]+")
_API_KEY = re.compile(r"\bab_[A-Za-z0-9_\-]{20,}")
_JSON_FIELD = re.compile(r"(?i)(\"(?:" + "|".join(SENSITIVE_NAMES) + r")\"\s*:\s*\")([^\"]*)(\")")


def redact(text: str) -> str:
    """Replace token-looking values (query/form fields, JSON fields, Bearer values, API keys) by ``***``."""
    text = _FIELD.sub(r"\1=***", text)
    text = _JSON_FIELD.sub(r"\1***\3", text)
    text = _BEARER.sub(r"\1 ***", text)
    return _API_KEY.sub("ab_***", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message (and uvicorn's access-log arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                return True
            record.msg, record.args = redact(message), None
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True
