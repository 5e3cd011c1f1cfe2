"""Readiness: may this process take traffic? The database answers, migrations are at head, the keys fit.

```
lifecycle = Lifecycle()                    # one per process; the server flips ``stopping`` on SIGTERM
result = await readiness(store, lifecycle)
result.ready, result.reason                # False, "database_unreachable"
```

``/health`` is liveness (the process serves HTTP); ``/ready`` is this. A load balancer takes a replica
out of rotation on 503 and puts it back on 200.
"""

from __future__ import annotations

import dataclasses

import anyio
from sqlalchemy.exc import SQLAlchemyError

from authbridge.errors import KeyRingMismatchError, StoreError
from authbridge.store import Store
from authbridge.store.db import migrations_at_head

__all__ = ["READY_TIMEOUT", "Lifecycle", "Readiness", "readiness"]

#: Seconds the checks together may take; a database slower than this counts as unreachable.
READY_TIMEOUT = 5.0


@dataclasses.dataclass
class Lifecycle:
    """The process's own state: ``stopping`` from the shutdown signal on (``/ready`` then answers 503)."""

    stopping: bool = False


@dataclasses.dataclass(frozen=True)
class Readiness:
    """The outcome: each check's state, and the first failure's code and message."""

    checks: dict[str, str]
    reason: str | None = None
    message: str | None = None

    @property
    def ready(self) -> bool:
        return self.reason is None


async def readiness(store: Store, lifecycle: Lifecycle, *, timeout: float = READY_TIMEOUT) -> Readiness:
    """Run the checks in order; the first that fails names the reason and the later ones are ``unknown``."""
    checks = {"shutdown": "no", "database": "unknown", "migrations": "unknown", "keys": "unknown"}
    if lifecycle.stopping:
        checks["shutdown"] = "in progress"
        return Readiness(checks, "shutting_down", "this process is shutting down; send traffic to another replica")
    try:
        with anyio.fail_after(timeout):
            if not await store.ping():
                checks["database"] = "unreachable"
                return Readiness(checks, "database_unreachable", "the database does not answer")
            checks["database"] = "ok"
            if not await migrations_at_head(store.engine):
                checks["migrations"] = "behind"
                return Readiness(
                    checks,
                    "migrations_not_at_head",
                    "the database's schema is not the one this version expects; restart to migrate",
                )
            checks["migrations"] = "ok"
            try:
                await store.keys.check_canaries()
            except KeyRingMismatchError as exc:
                checks["keys"] = "mismatch"
                return Readiness(checks, "key_ring_mismatch", str(exc))
            checks["keys"] = "ok"
    except TimeoutError:
        failing = next(name for name, state in checks.items() if state == "unknown")
        checks[failing] = "timeout"
        return Readiness(checks, f"{failing}_timeout", f"the {failing} check took longer than {timeout:g} s")
    except (SQLAlchemyError, OSError, StoreError) as exc:
        failing = next(name for name, state in checks.items() if state == "unknown")
        checks[failing] = "error"
        return Readiness(checks, "database_error", f"the {failing} check failed: {type(exc).__name__}")
    return Readiness(checks)
