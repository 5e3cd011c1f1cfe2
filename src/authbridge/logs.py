"""Log context (request id, connection id, integration) and the JSON log format.

```
token = REQUEST_ID.set("req-1")          # the app sets it per request (from X-Request-ID or generated)
CONNECTION_ID.set(connection_id)         # the proxy, the API and the refresher set what they know
logging.Formatter -> JsonFormatter()     # AUTHBRIDGE_LOG_FORMAT=json: one object per line
```

Each request runs in its own task, so a value set while serving one never leaks into another.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import os
import random
import re
import secrets

from authbridge.redact import redact

__all__ = ["CONNECTION_ID", "INTEGRATION", "REQUEST_ID", "JsonFormatter", "request_id_of"]

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("authbridge_request_id", default=None)
CONNECTION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("authbridge_connection_id", default=None)
INTEGRATION: contextvars.ContextVar[str | None] = contextvars.ContextVar("authbridge_integration", default=None)

#: A caller's X-Request-ID is kept when it is 1 to 128 of these characters; otherwise one is generated.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:=+/@-]{1,128}")


#: Request ids need to be unique, not secret: a PRNG seeded from the OS (again in a forked child) makes
#: them without a system call per request (``secrets`` reads ``getrandom`` each time).
_IDS = random.Random(secrets.randbits(128))  # noqa: S311 - unique, not secret
os.register_at_fork(after_in_child=lambda: _IDS.seed(secrets.randbits(128)))


def request_id_of(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The caller's ``X-Request-ID`` when it is safe to log and echo, else a new random one (32 hex digits)."""
    for name, value in headers:
        if name == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                return value
            break
    return b"%032x" % _IDS.getrandbits(128)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request/connection/integration, exception.

    Every string field passes :func:`authbridge.redact.redact` (the message is redacted by the
    ``RedactingFilter`` first; the context fields and the traceback are redacted here).
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str | None] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": REQUEST_ID.get(),
            "connection_id": CONNECTION_ID.get(),
            "integration": INTEGRATION.get(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps({k: redact(v) if v else v for k, v in entry.items()}, ensure_ascii=False)
