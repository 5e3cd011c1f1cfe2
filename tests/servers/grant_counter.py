"""A loopback token endpoint that counts the grants it hands out per connection (raw ASGI under uvicorn).

```
python -m tests.servers.grant_counter --port 8123 [--expires-in 3600] [--delay-ms 0]
POST /token  conn=<id>        -> {"access_token": "<id>-<n>", "token_type": "Bearer", "expires_in": ...}
GET  /stats                   -> {"total": n, "per_connection": {"<id>": n, ...}}
POST /reset                   -> counters to zero
POST /config {"expires_in": s, "delay_ms": ms}
```

Used by tests/lifecycle/test_refresh_replicas.py (each due connection refreshed exactly once across
replicas) and benchmarks/refresh_storm.py (the refresher against a minimal client on the same endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import typing
from urllib.parse import parse_qsl

import uvicorn

Scope = typing.MutableMapping[str, typing.Any]
Receive = typing.Callable[[], typing.Awaitable[typing.MutableMapping[str, typing.Any]]]
Send = typing.Callable[[typing.MutableMapping[str, typing.Any]], typing.Awaitable[None]]


class GrantCounter:
    """The ASGI app; its state lives in the process."""

    def __init__(self, *, expires_in: int = 3600, delay_ms: float = 0.0) -> None:
        self.expires_in = expires_in
        self.delay_ms = delay_ms
        self.counts: collections.Counter[str] = collections.Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path == "/token" and scope["method"] == "POST":
            form = dict(parse_qsl(body.decode()))
            conn = form.get("conn", "")
            self.counts[conn] += 1
            if self.delay_ms:
                await asyncio.sleep(self.delay_ms / 1000)
            answer = {
                "access_token": f"{conn}-{self.counts[conn]}",
                "token_type": "Bearer",
                "expires_in": self.expires_in,
            }
        elif path == "/stats":
            answer = {"total": sum(self.counts.values()), "per_connection": dict(self.counts)}
        elif path == "/reset":
            self.counts.clear()
            answer = {"ok": True}
        elif path == "/config":
            changes = json.loads(body or b"{}")
            self.expires_in = int(changes.get("expires_in", self.expires_in))
            self.delay_ms = float(changes.get("delay_ms", self.delay_ms))
            answer = {"expires_in": self.expires_in, "delay_ms": self.delay_ms}
        else:
            answer = {"error": "not_found"}
        data = json.dumps(answer).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 200 if "error" not in answer else 404, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--expires-in", type=int, default=3600)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    app = GrantCounter(expires_in=args.expires_in, delay_ms=args.delay_ms)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="off")


if __name__ == "__main__":
    main()
