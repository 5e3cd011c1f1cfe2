"""Redaction of secrets from log lines and messages: a logging filter and the function behind it."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["SENSITIVE_NAMES", "RedactingFilter", "basic_credentials", "redact", "scrub"]

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
_SUFFIXES = r"token|secret|password|passwd|pwd|assertion|apikey|api_key|verifier|signature"
_FIELD = re.compile(
    r"(?i)(?<![A-Za-z0-9_\-])((?:"
    + "|".join(SENSITIVE_NAMES)
    + r")|[A-Za-z0-9_\-]*(?:"
    + _SUFFIXES
    + r"))=([^&\s\"']+)"
)
_PERCENT = re.compile(r"%[0-9A-F]{2}")
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


def _forms(secret: str) -> set[str]:
    """The texts a secret may be echoed as: verbatim, percent-, form- and JSON-encoded, base64."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    forms |= {_PERCENT.sub(lambda m: m.group().lower(), form) for form in forms}  # %2f as well as %2F
    for escaped in (json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
        forms |= {escaped, escaped.replace("/", "\\/")}  # JSON may escape a slash
    encoded = secret.encode("utf-8")
    for b64 in (base64.b64encode(encoded).decode(), base64.urlsafe_b64encode(encoded).decode()):
        forms |= {b64, b64.rstrip("=")}
    return forms


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every known secret in ``text`` by ``***``, in each form an upstream may echo it back.

    The forms: verbatim, percent-encoded (``quote``, ``quote(safe="")``, ``quote_plus``, either hex
    case), JSON-escaped, and base64 (standard or URL-safe). Pass the pairs of :func:`basic_credentials`
    to catch an echoed HTTP Basic header. Secrets shorter than 3 characters are left alone.
    """
    values = {s for s in secrets if s and len(s) >= 3}
    if not values or not text:
        return text
    forms = sorted({form for value in values for form in _forms(value)}, key=len, reverse=True)
    for form in forms:
        if form in text:
            text = text.replace(form, "***")
    return text


def basic_credentials(client_id: str | None, client_secret: str | None) -> tuple[str, ...]:
    """The ``id:secret`` texts a Basic header carries (raw and form-encoded, RFC 6749 §2.3.1), for :func:`scrub`."""
    if not client_id or not client_secret:
        return ()
    return (f"{client_id}:{client_secret}", f"{quote_plus(client_id)}:{quote_plus(client_secret)}")


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
