"""OpenTelemetry spans (``authbridge[otel]``), recorded with the SDK's in-memory exporter.

The app runs in-process (its ASGI interface through httpx, so the exporter is in reach) and proxies to
the test upstream on loopback, which echoes the headers it received: the ``traceparent`` it got must be
that of the proxy's upstream span.
"""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from authbridge.app import create_app
from authbridge.config import Settings
from tests.conftest import create_api_key
from tests.proxy.upstream import UpstreamState, free_port, make_app, serve

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_PARENT = "00f067aa0ba902b7"
API_TOKEN = "api-TOKEN-trace-77aa"


@pytest.fixture
def upstream() -> Iterator[tuple[str, UpstreamState]]:
    state = UpstreamState()
    with serve(make_app(state), free_port()) as url:
        yield url, state


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    """A started app that traces into an in-memory exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    env = {
        "AUTHBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTHBRIDGE_BACKGROUND_TASKS": "false",
    }
    with TestClient(create_app(Settings.from_env(env), tracer_provider=provider)) as client:
        yield client, exporter


def _named(spans: typing.Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_proxied_calls_are_traced_and_the_context_goes_upstream(
    traced: tuple[TestClient, InMemorySpanExporter], upstream: tuple[str, UpstreamState]
) -> None:
    """A proxied call: a server span (child of the caller's traceparent), an upstream client span whose
    context the upstream received as ``traceparent``; a rejection adds a refresh span and a token-endpoint span."""
    client, exporter = traced
    url, state = upstream
    headers = {"Authorization": f"Bearer {create_api_key(client)}"}
    spec = {
        "key": "traced",
        "name": "Traced",
        "auth": {"type": "custom_token", "token_url": f"{url}/login", "token_response": {"access_token": "token"}},
        "request": {"base_url": url},
    }
    assert client.put("/integrations/traced", json=spec, headers=headers).status_code == 201
    created = client.post("/connections", json={"integration": "traced", "name": "T"}, headers=headers)
    cid = created.json()["id"]
    exporter.clear()

    caller = {**headers, "traceparent": f"00-{CALLER_TRACE}-{CALLER_PARENT}-01", "TraceParent": "00-bogus"}
    state.valid_tokens = set()  # the first attempt is rejected: refresh, then retry
    answer = client.get(f"/proxy/{cid}/protected/thing?secret=q-VALUE", headers=caller)
    assert answer.status_code == 200, answer.text
    received = answer.json()["headers"]["traceparent"]

    spans = exporter.get_finished_spans()
    [proxy] = _named(spans, "proxy")
    assert proxy.kind is SpanKind.SERVER
    assert format(proxy.context.trace_id, "032x") == CALLER_TRACE
    assert proxy.parent is not None and format(proxy.parent.span_id, "016x") == CALLER_PARENT
    assert proxy.attributes is not None
    assert proxy.attributes["authbridge.integration"] == "traced"
    assert proxy.attributes["http.response.status_code"] == 200
    upstream_spans = _named(spans, "upstream GET")
    assert len(upstream_spans) == 2  # the rejected attempt and the retry
    assert all(s.parent is not None and s.parent.span_id == proxy.context.span_id for s in upstream_spans)
    retry = upstream_spans[-1]
    assert received == f"00-{CALLER_TRACE}-{format(retry.context.span_id, '016x')}-01"
    [refresh] = _named(spans, "refresh")
    assert refresh.parent is not None and refresh.context.trace_id == proxy.context.trace_id
    [token_call] = _named(spans, "token endpoint")
    assert token_call.kind is SpanKind.CLIENT
    assert token_call.parent is not None and token_call.parent.span_id == refresh.context.span_id
    for span in spans:  # no connection id, token, or query value in a span's name or attributes
        text = span.name + repr(dict(span.attributes or {}))
        assert cid not in text and "q-VALUE" not in text and "tok-" not in text


def test_api_requests_are_named_by_their_route_template(
    traced: tuple[TestClient, InMemorySpanExporter],
) -> None:
    """A management call's span is named by the route's template, never by the path (ids stay out)."""
    client, exporter = traced
    headers = {"Authorization": f"Bearer {create_api_key(client)}"}
    assert client.get("/connections/abcdef0123456789abcdef0123456789", headers=headers).status_code == 404
    assert client.get("/integrations", headers=headers).status_code == 200
    names = [s.name for s in exporter.get_finished_spans()]
    assert "GET /connections/{connection_id}" in names
    assert "GET /integrations" in names
    assert not any("abcdef0123" in name for name in names)
    [missing] = [s for s in exporter.get_finished_spans() if s.name == "GET /connections/{connection_id}"]
    assert missing.attributes is not None and missing.attributes["http.response.status_code"] == 404
    assert missing.status.status_code is not StatusCode.ERROR  # a 404 is the caller's problem, not a failure


def test_a_failing_upstream_marks_the_proxy_span_failed(
    traced: tuple[TestClient, InMemorySpanExporter], upstream: tuple[str, UpstreamState]
) -> None:
    """An unreachable upstream: the proxy answers 502 and its span says so (status ERROR), with no exception text."""
    client, exporter = traced
    headers = {"Authorization": f"Bearer {create_api_key(client)}"}
    spec = {
        "key": "gone",
        "name": "Gone",
        "auth": {"type": "api_token"},
        "request": {"base_url": f"http://127.0.0.1:{free_port()}"},
    }
    assert client.put("/integrations/gone", json=spec, headers=headers).status_code == 201
    created = client.post(
        "/connections", json={"integration": "gone", "name": "G", "credentials": {"token": API_TOKEN}}, headers=headers
    )
    cid = created.json()["id"]
    exporter.clear()
    assert client.get(f"/proxy/{cid}/x", headers=headers).status_code == 502
    [proxy] = _named(exporter.get_finished_spans(), "proxy")
    assert proxy.status.status_code is StatusCode.ERROR
    assert proxy.status.description == "authbridge 502"
    assert not proxy.events  # no recorded exception (its text could hold anything)


def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    """Without AUTHBRIDGE_OTEL nor a provider, the app, the proxy and the broker hold no tracer at all."""
    app = create_app(Settings.from_env({"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data")}))
    with TestClient(app) as client:
        assert client.app.tracer is None  # type: ignore[attr-defined]
        assert client.app.state.proxy.tracer is None  # type: ignore[attr-defined]
        assert client.app.state.broker.tracer is None  # type: ignore[attr-defined]
        assert client.app.state.metrics is None  # type: ignore[attr-defined]


def test_authbridge_otel_true_builds_an_otlp_provider(tmp_path: Path) -> None:
    """``AUTHBRIDGE_OTEL=true`` installs an SDK provider exporting over OTLP/HTTP, or reuses one already set."""
    script = """
import sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from authbridge.config import Settings
from authbridge.tracing import configured_tracer

settings = Settings.from_env({"AUTHBRIDGE_OTEL": "true", "AUTHBRIDGE_DATA_DIR": sys.argv[1]})
assert settings.otel and configured_tracer(False) is None
first = configured_tracer(settings.otel)
assert isinstance(trace.get_tracer_provider(), TracerProvider)
second = configured_tracer(True)
assert first is not None and second is not None
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        timeout=60,
        env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert done.stdout.strip() == b"ok", done.stderr.decode()


__all__: typing.Sequence[str] = ()


def test_a_server_side_failure_of_an_api_request_marks_its_span(
    traced: tuple[TestClient, InMemorySpanExporter],
) -> None:
    """While shutting down, /ready answers 503: its span is named by the route and marked failed."""
    client, exporter = traced
    client.app.state.lifecycle.stopping = True  # type: ignore[attr-defined]  # what SIGTERM does
    assert client.get("/ready").status_code == 503
    [ready] = [s for s in exporter.get_finished_spans() if s.name == "GET /ready"]
    assert ready.status.status_code is StatusCode.ERROR
    assert ready.status.description == "503"
    client.app.state.lifecycle.stopping = False  # type: ignore[attr-defined]
