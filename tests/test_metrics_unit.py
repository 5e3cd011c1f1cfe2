"""The metric helpers: label classes and bounds (end to end, through a real server: tests/proxy/test_metrics.py)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from authbridge.metrics import MAX_INTEGRATIONS, OTHER, Metrics, method_class, status_class


def _labels(metrics: Metrics, name: str) -> list[dict[str, str]]:
    return [
        dict(sample.labels)
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name == name
    ]


def test_method_and_status_classes() -> None:
    """Methods fold into read/write and statuses into five classes, whatever a caller sends."""
    assert [method_class(m) for m in ("GET", "HEAD", "OPTIONS", "POST", "PATCH", "BREW")] == [
        "read",
        "read",
        "read",
        "write",
        "write",
        "write",
    ]
    assert [status_class(s) for s in (100, 204, 302, 404, 499, 503, 599, 600, 42, -1)] == [
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "4xx",
        "5xx",
        "5xx",
        "5xx",
        "5xx",
        "5xx",
    ]


def test_integration_labels_are_capped() -> None:
    """Past MAX_INTEGRATIONS distinct keys, requests are counted under _other: the series stay bounded."""
    metrics = Metrics()
    for number in range(MAX_INTEGRATIONS + 50):
        metrics.proxied(f"i{number}", "GET", 200, "upstream", 0.01)
        metrics.upstream(f"i{number}", 0.01)
    integrations = {labels["integration"] for labels in _labels(metrics, "authbridge_proxy_requests_total")}
    assert len(integrations) == MAX_INTEGRATIONS + 1
    assert OTHER in integrations
    [other] = [
        sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name == "authbridge_proxy_requests_total" and sample.labels["integration"] == OTHER
    ]
    assert other == 50
    upstream = {labels["integration"] for labels in _labels(metrics, "authbridge_upstream_duration_seconds_count")}
    assert len(upstream) == MAX_INTEGRATIONS + 1


def test_histogram_buckets_are_cumulative_and_sum_right() -> None:
    """A value on a bucket's bound counts in it (le); one above every bound counts only in +Inf."""
    metrics = Metrics()
    for seconds in (0.002, 0.003, 100.0):
        metrics.proxied("acme", "POST", 201, "upstream", seconds)
    buckets = {
        sample.labels["le"]: sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name == "authbridge_proxy_request_duration_seconds_bucket"
    }
    assert buckets["0.002"] == 1
    assert buckets["0.005"] == 2
    assert buckets["60.0"] == 2
    assert buckets["+Inf"] == 3
    [total] = _labels(metrics, "authbridge_proxy_request_duration_seconds_sum")
    assert total == {"integration": "acme", "method": "write", "status": "2xx"}


def test_hostile_methods_and_statuses_do_not_grow_the_cache_without_bound() -> None:
    """Ten thousand distinct (caller-chosen) methods still make one series, and the lookup cache stops growing."""
    metrics = Metrics()
    for number in range(10_050):
        metrics.proxied("acme", f"M{number}", 200, "upstream", 0.01)
    assert len(metrics._proxied) == 10_000
    [series] = _labels(metrics, "authbridge_proxy_requests_total")
    assert series == {"integration": "acme", "method": "write", "status": "2xx", "origin": "upstream"}
