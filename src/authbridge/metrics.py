"""Prometheus metrics (the official ``prometheus-client``), one registry per app, cheap on the proxy's path.

```
metrics = Metrics()                                       # its own CollectorRegistry: apps in one process stay apart
metrics.proxied("github", "GET", 200, "upstream", 0.012)  # one call per proxied request (about 1 µs)
metrics.refreshed("github", "ok")
text = metrics.render()                                   # the text exposition format
```

No label ever holds a secret, a connection id or a parameter value. ``integration`` is an integration
key (letters and digits, chosen by the operator), at most :data:`MAX_INTEGRATIONS` distinct ones; the
rest are counted under ``_other``. Methods are two classes (``read``: GET, HEAD, OPTIONS; ``write``:
the rest) and statuses five (``1xx`` .. ``5xx``), so the series stay few however the API is called.
"""

from __future__ import annotations

import time
import typing

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE", "MAX_INTEGRATIONS", "OTHER", "Metrics", "method_class", "status_class"]

#: The content type of :meth:`Metrics.render`.
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: Distinct ``integration`` label values kept; later ones are counted as :data:`OTHER`.
MAX_INTEGRATIONS = 200
OTHER = "_other"
_READ = frozenset({"GET", "HEAD", "OPTIONS"})
_STATUS = ("1xx", "1xx", "2xx", "3xx", "4xx", "5xx")
#: Seconds: from a fast loopback upstream to a slow provider; the proxy waits 60 s between bytes at most.
_LATENCY = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LAG = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
#: Every status a connection may be in: each is exported (0 when none), so an alert sees it from the start.
CONNECTION_STATUSES = ("pending", "active", "needs_reauth", "revoked", "error")


def method_class(method: str) -> str:
    """``read`` for GET, HEAD and OPTIONS; ``write`` for every other method."""
    return "read" if method in _READ else "write"


def status_class(status: int) -> str:
    """``2xx`` for 200..299, and so on; anything outside 100..599 is ``5xx``."""
    return _STATUS[status // 100] if 100 <= status < 600 else "5xx"


class _Proxied(typing.NamedTuple):
    requests: typing.Any
    duration: typing.Any


class Metrics:
    """Every metric AuthBridge exports; ``docs/operations.md`` lists them with alert examples."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.proxy_requests = Counter(
            "authbridge_proxy_requests",
            "Proxied requests answered, by integration, method class, status class and who produced the answer.",
            ["integration", "method", "status", "origin"],
            registry=registry,
        )
        self.proxy_duration = Histogram(
            "authbridge_proxy_request_duration_seconds",
            "Time from a proxied request's arrival to its answer's head being sent.",
            ["integration", "method", "status"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "authbridge_upstream_duration_seconds",
            "Time an upstream took to answer one proxied attempt (until its answer's head).",
            ["integration"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.refreshes = Counter(
            "authbridge_refreshes",
            "Token refreshes by outcome: ok, failed (transient: retried later) or needs_reauth (permanent).",
            ["integration", "outcome"],
            registry=registry,
        )
        self.token_endpoint = Histogram(
            "authbridge_token_endpoint_duration_seconds",
            "Calls to providers' token endpoints (code exchanges and refreshes), by outcome.",
            ["integration", "outcome"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.token_reads = Counter(
            "authbridge_token_reads",
            "GET /connections/{id}/token answers, by outcome (ok, or the error code).",
            ["outcome"],
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "authbridge_webhook_deliveries",
            "Webhook delivery attempts by outcome: delivered, retrying, or failed (attempts exhausted).",
            ["outcome"],
            registry=registry,
        )
        self.connections = Gauge(
            "authbridge_connections",
            "Connected accounts by status, counted when scraped.",
            ["status"],
            registry=registry,
        )
        self.webhook_backlog = Gauge(
            "authbridge_webhook_backlog",
            "Webhook deliveries neither delivered nor given up, counted when scraped.",
            registry=registry,
        )
        self.loop_lag = Histogram(
            "authbridge_event_loop_lag_seconds",
            "How late the event loop ran a timer (sampled every half second): a busy or blocked loop.",
            buckets=_LAG,
            registry=registry,
        )
        self._integrations: set[str] = set()
        self._proxied: dict[tuple[str, str, str, str], _Proxied] = {}

    def integration(self, key: str) -> str:
        """``key`` as a label value: itself among the first :data:`MAX_INTEGRATIONS` seen, else ``_other``."""
        if key in self._integrations:
            return key
        if len(self._integrations) >= MAX_INTEGRATIONS:
            return OTHER
        self._integrations.add(key)
        return key

    def proxied(self, integration: str, method: str, status: int, origin: str, seconds: float) -> None:
        """Count one proxied request and observe its duration (the label children are cached: about 1 µs)."""
        key = (integration, method, str(status), origin)
        children = self._proxied.get(key)
        if children is None:
            label, verb, klass = self.integration(integration), method_class(method), status_class(status)
            children = _Proxied(
                self.proxy_requests.labels(label, verb, klass, origin), self.proxy_duration.labels(label, verb, klass)
            )
            if len(self._proxied) < 10_000:  # methods and statuses are the caller's: bound the cache too
                self._proxied[key] = children
        children.requests.inc()
        children.duration.observe(seconds)

    def upstream(self, integration: str, seconds: float) -> None:
        """Observe one upstream attempt's time to its answer's head."""
        self.upstream_duration.labels(self.integration(integration)).observe(seconds)

    def refreshed(self, integration: str, outcome: str) -> None:
        """Count one refresh attempt that called the token endpoint: ``ok``, ``failed`` or ``needs_reauth``."""
        self.refreshes.labels(self.integration(integration), outcome).inc()

    def token_call(self, integration: str, outcome: str, seconds: float) -> None:
        """Observe one call to a provider's token endpoint (``ok`` or ``error``)."""
        self.token_endpoint.labels(self.integration(integration), outcome).observe(seconds)

    def token_read(self, outcome: str) -> None:
        """Count one answer of the token endpoint (``ok`` or an error code)."""
        self.token_reads.labels(outcome).inc()

    def delivered(self, outcome: str) -> None:
        """Count one webhook delivery attempt: ``delivered``, ``retrying`` or ``failed``."""
        self.webhook_deliveries.labels(outcome).inc()

    def set_state(self, connections: typing.Mapping[str, int], backlog: int) -> None:
        """The counts read from the database at scrape time (statuses outside the known ones are dropped)."""
        for status in CONNECTION_STATUSES:
            self.connections.labels(status).set(connections.get(status, 0))
        self.webhook_backlog.set(backlog)

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)

    async def watch_loop(self, stop: anyio.Event, interval: float = 0.5) -> None:
        """Sample the event loop's lag until ``stop`` is set: wait ``interval``, and see how late we woke."""
        while not stop.is_set():
            start = time.perf_counter()
            with anyio.move_on_after(interval):
                await stop.wait()
            if not stop.is_set():
                self.loop_lag.observe(max(0.0, time.perf_counter() - start - interval))
