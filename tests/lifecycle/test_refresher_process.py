"""``authbridge refresher`` as its own process refreshes a due token nobody is using, then stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from authbridge.testing import memory_key_ring
from tests.lifecycle.helpers import OffsetClock, apply, connect, env_for, open_broker, spec_text
from tests.servers.fixtures import OAuthServer


async def test_refresher_process(db_url: str, tmp_path: Path, oauth: OAuthServer) -> None:
    """The separate refresher refreshes a token inside its window at its first scan, and exits cleanly."""
    env = env_for(db_url, memory_key_ring("k1"), str(tmp_path / "data"))
    oauth.configure(token_ttl=2)  # a 2-second token: its window is 1 second
    async with open_broker(env, OffsetClock()) as broker:
        await apply(broker, spec_text(oauth))
        cid = await connect(broker, oauth)
    time.sleep(1.2)
    process = subprocess.Popen(
        [sys.executable, "-m", "authbridge", "refresher"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 20
        while oauth.stats()["token_calls"]["refresh_token"] < 1 and time.time() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert oauth.stats()["token_calls"]["refresh_token"] >= 1, err[-2000:]
    assert process.returncode == 0, err[-2000:]
    assert "refresher stopped" in err and "Traceback" not in err
    async with open_broker(env, OffsetClock()) as broker:
        events = [e.type for e in await broker.store.events.list(connection_id=cid)]
    assert "connection.refreshed" in events
