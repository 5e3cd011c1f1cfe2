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
from bisect import bisect_left
from collections.abc import Iterator

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

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


class _Series:
    """One histogram series: a count per bucket (the last one: above every bound) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY) + 1)
        self.total = 0.0

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative counts per upper bound, as the text format wants them."""
        running, out = 0, []
        for bound, count in zip((*(str(b) for b in _LATENCY), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class _ProxyStats(Collector):
    """The proxy's metrics as plain dicts, read when scraped.

    prometheus-client's own Counter and Histogram take a lock per update (they serve threads): about
    4 µs per proxied request for the three of them on this machine. The proxy runs on one event loop,
    and so does the scrape, so plain additions are exact; this is the library's custom-collector door.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str, str], list[int]] = {}
        self.duration: dict[tuple[str, ...], _Series] = {}
        self.upstream: dict[tuple[str, ...], _Series] = {}

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "authbridge_proxy_requests",
            "Proxied requests answered, by integration, method class, status class and who produced the answer.",
            labels=["integration", "method", "status", "origin"],
        )
        for key, cell in self.requests.items():
            requests.add_metric(list(key), cell[0])
        yield requests
        for name, documentation, labels, table in (
            (
                "authbridge_proxy_request_duration_seconds",
                "Time from a proxied request's arrival to the end of its answer.",
                ["integration", "method", "status"],
                self.duration,
            ),
            (
                "authbridge_upstream_duration_seconds",
                "Time an upstream took to answer one proxied attempt (until its answer's head).",
                ["integration"],
                self.upstream,
            ),
        ):
            family = HistogramMetricFamily(name, documentation, labels=labels)
            for labelled, series in table.items():
                family.add_metric(list(labelled), series.buckets(), sum_value=series.total)
            yield family


class Metrics:
    """Every metric AuthBridge exports; ``docs/operations.md`` lists them with alert examples."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        #: The proxy's three metrics: plain counters, exported at scrape (no lock per request: see _ProxyStats).
        self.proxy = _ProxyStats()
        registry.register(self.proxy)
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
        self._proxied: dict[tuple[str, str, int, str], tuple[list[int], _Series]] = {}
        self._upstream: dict[str, _Series] = {}

    def integration(self, key: str) -> str:
        """``key`` as a label value: itself among the first :data:`MAX_INTEGRATIONS` seen, else ``_other``."""
        if key in self._integrations:
            return key
        if len(self._integrations) >= MAX_INTEGRATIONS:
            return OTHER
        self._integrations.add(key)
        return key

    def proxied(self, integration: str, method: str, status: int, origin: str, seconds: float) -> None:
        """Count one proxied request and observe its duration (about a microsecond: two dict looks, two adds)."""
        found = self._proxied.get((integration, method, status, origin))
        if found is None:
            found = self._proxied_series(integration, method, status, origin)
        found[0][0] += 1
        series = found[1]
        series.counts[bisect_left(_LATENCY, seconds)] += 1
        series.total += seconds

    def _proxied_series(self, integration: str, method: str, status: int, origin: str) -> tuple[list[int], _Series]:
        label, verb, klass = self.integration(integration), method_class(method), status_class(status)
        cell = self.proxy.requests.setdefault((label, verb, klass, origin), [0])
        series = self.proxy.duration.setdefault((label, verb, klass), _Series())
        if len(self._proxied) < 10_000:  # methods and statuses are the caller's: bound the cache too
            self._proxied[(integration, method, status, origin)] = (cell, series)
        return cell, series

    def upstream(self, integration: str, seconds: float) -> None:
        """Observe one upstream attempt's time to its answer's head."""
        series = self._upstream.get(integration)
        if series is None:
            series = self.proxy.upstream.setdefault((self.integration(integration),), _Series())
            self._upstream[integration] = series
        series.counts[bisect_left(_LATENCY, seconds)] += 1
        series.total += seconds

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
