"""A minimal web app that lets its users connect their accounts through AuthBridge (standard library only).

The backend holds an API key with the ``connect`` scope and never gives it to the browser: for each
page view it asks AuthBridge for a connect session (``POST /connect/sessions``) and puts only the
session's ``connect_url`` in the page, which opens it with ``connect.js``.

    AUTHBRIDGE_URL=http://127.0.0.1:8000 AUTHBRIDGE_CONNECT_KEY=ab_... APP_PORT=8080 python examples/connect-app/app.py

AuthBridge must allow this app's origin: ``AUTHBRIDGE_ALLOWED_RETURN_ORIGINS=http://127.0.0.1:8080``.
"""

from __future__ import annotations

import html
import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

AUTHBRIDGE_URL = os.environ.get("AUTHBRIDGE_URL", "http://127.0.0.1:8000").rstrip("/")
CONNECT_KEY = os.environ.get("AUTHBRIDGE_CONNECT_KEY", "")
PORT = int(os.environ.get("APP_PORT", "8080"))
APP_URL = f"http://127.0.0.1:{PORT}"
#: Which integrations this app offers its users (comma-separated integration keys).
INTEGRATIONS = [k for k in os.environ.get("APP_INTEGRATIONS", "github").split(",") if k]
PAGE = (Path(__file__).parent / "index.html").read_text(encoding="utf-8")


def connect_session(user_id: str) -> dict[str, str]:
    """Ask AuthBridge for a connect session for this user (the API key stays on the server)."""
    body = {
        "end_user": {"id": user_id, "display_name": user_id.title()},
        "allowed_integrations": INTEGRATIONS,
        "return_to": f"{APP_URL}/done",
        "ttl": "30m",
    }
    request = urllib.request.Request(  # noqa: S310 - the URL is this app's own configuration
        f"{AUTHBRIDGE_URL}/connect/sessions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {CONNECT_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())  # type: ignore[no-any-return]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        if url.path == "/":
            session = connect_session("ann")  # your signed-in user's id
            page = PAGE.replace("{{AUTHBRIDGE_URL}}", html.escape(AUTHBRIDGE_URL)).replace(
                "{{CONNECT_URL}}", html.escape(session["connect_url"])
            )
            self._send(200, page)
        elif url.path == "/done":  # where the browser lands when popups were blocked
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            status = html.escape(query.get("status", "unknown"))
            connection = html.escape(query.get("connection_id", ""))
            self._send(200, f"<!doctype html><title>Done</title><p id='result'>{status} {connection}</p>")
        else:
            self._send(404, "not found")

    def _send(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return  # keep the example quiet


if __name__ == "__main__":
    print(f"serving {APP_URL}", flush=True)  # noqa: T201
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
