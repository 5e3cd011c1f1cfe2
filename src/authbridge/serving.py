"""``authbridge run``'s server: uvicorn, with a readiness drain and a bounded graceful shutdown.

On SIGTERM (or Ctrl-C):

1. ``/ready`` answers 503 at once (``Lifecycle.stopping``), while the listener still accepts for
   ``AUTHBRIDGE_SHUTDOWN_DRAIN`` seconds, so a load balancer sees the replica leave before its
   connections are refused;
2. the listener closes; requests in flight (proxied calls included) finish, for at most
   ``AUTHBRIDGE_SHUTDOWN_TIMEOUT`` seconds, then are cancelled;
3. the app's lifespan ends: background loops stop, in-flight refreshes finish (same bound), this
   process's refresh leases are given back, connections are closed.

A second Ctrl-C exits at once (uvicorn's own rule).
"""

from __future__ import annotations

import time
import typing

import uvicorn

from authbridge.broker.readiness import Lifecycle
from authbridge.config import Settings
from authbridge.errors import ConfigError

__all__ = ["DrainingServer", "serve"]


class DrainingServer(uvicorn.Server):
    """A uvicorn server that marks the process not ready, and keeps accepting for ``drain`` s, before stopping."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, *, drain: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain = drain
        self._drain_until: float | None = None

    async def on_tick(self, counter: int) -> bool:
        exit_now = await super().on_tick(counter)
        if not (exit_now and self.should_exit):
            return exit_now
        self.lifecycle.stopping = True
        if self._drain_until is None:
            self._drain_until = time.monotonic() + self.drain
        return self.force_exit or time.monotonic() >= self._drain_until


def serve(
    app: typing.Any,
    settings: Settings,
    lifecycle: Lifecycle,
    *,
    host: str,
    port: int,
    admin: tuple[str, int] | None = None,
) -> None:
    """Run ``app`` until a shutdown signal, then drain and stop as the module docstring says.

    With ``admin`` (host, port), one server listens on both addresses (one lifespan, one shutdown);
    the app tells them apart by the port a request came in on (``app.surface_of``).
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=settings.log_level,
        log_config=None,
        # uvicorn formats each access-log line's arguments before checking the level: skip it when unused.
        access_log=settings.log_level in {"debug", "info"},
        # X-Forwarded-* parsing would only cost time. The one use of the client's address, the console's
        # per-address sign-in limit, then sees a reverse proxy's address: its overall limit still holds.
        proxy_headers=False,
        # The proxy passes the upstream's Date and Server on; AuthBridge's own answers get a Date from the app.
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    server = DrainingServer(config, lifecycle, drain=settings.shutdown_drain)
    if admin is None:
        server.run()
        return
    if admin[1] == port:
        raise ConfigError(f"the admin listener's port must differ from the public one ({port})")
    sockets = [config.bind_socket()]
    admin_config = uvicorn.Config(app, host=admin[0], port=admin[1])
    sockets.append(admin_config.bind_socket())
    server.run(sockets=sockets)
