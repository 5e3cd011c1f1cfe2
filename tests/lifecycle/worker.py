"""A separate OS process that asks for a connection's token (or refreshes it) on a shared database.

python -m tests.lifecycle.worker CONNECTION_ID --calls N --offset SECONDS [--go-fd FD] [--force]
Environment: AUTHBRIDGE_DATABASE_URL, AUTHBRIDGE_ENCRYPTION_KEYS, AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS.
Prints "READY" once its broker is open; with --go-fd it then blocks reading that pipe until the test closes
the write end, so every worker of a test is released at the same moment (a start barrier, not a head start).
Then prints one JSON line: {"tokens": [...], "errors": [...]}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import timedelta

from authbridge.errors import AuthBridgeError
from tests.lifecycle.helpers import OffsetClock, open_broker


async def main(args: argparse.Namespace) -> None:
    clock = OffsetClock(timedelta(seconds=args.offset))
    env = {k: v for k, v in os.environ.items() if k.startswith("AUTHBRIDGE_")}
    async with open_broker(env, clock, refresh_deadline=args.deadline) as broker:
        print("READY", flush=True)
        if args.go_fd is not None:
            os.read(args.go_fd, 1)  # returns (b"") when the test closes the pipe: the start barrier
            os.close(args.go_fd)

        async def one() -> str:
            if args.force:
                creds = await broker.connections.refresh(args.connection_id)
                assert creds.access_token is not None
                return creds.access_token
            return (await broker.connections.token(args.connection_id)).access_token

        results = await asyncio.gather(*(one() for _ in range(args.calls)), return_exceptions=True)
    tokens = [r for r in results if isinstance(r, str)]
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    print(json.dumps({"tokens": tokens, "errors": errors}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("connection_id")
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--offset", type=float, default=0.0)
    parser.add_argument("--go-fd", type=int, default=None)
    parser.add_argument("--deadline", type=float, default=30.0)
    parser.add_argument("--force", action="store_true")
    try:
        asyncio.run(main(parser.parse_args()))
    except AuthBridgeError as exc:
        print(json.dumps({"tokens": [], "errors": [str(exc)]}), flush=True)
        sys.exit(1)
