"""``GET /metrics`` of a real ``authbridge run`` after real traffic, read with prometheus_client's own parser.

The metric helpers themselves (label bounds, classes) are tested in ``tests/test_metrics_unit.py``.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.proxy.conftest import Server, Upstream, create_key, run_authbridge, server_env

METRICS_TOKEN = "metrics-TOKEN-0123456789abcdef"
API_TOKEN = "api-TOKEN-SECRET-5e1f"
SECRET_PARAM = "param-VALUE-9d2c"


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """AuthBridge with metrics on (its own token)."""
    data = tmp_path_factory.mktemp("metrics") / "data"
    env = server_env(AUTHBRIDGE_DATA_DIR=str(data), AUTHBRIDGE_METRICS_TOKEN=METRICS_TOKEN)
    with run_authbridge(env, create_key(env, "metrics")) as running:
        yield running


def _samples(server: Server) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    for secret in (API_TOKEN, SECRET_PARAM, METRICS_TOKEN, server.key):
        assert secret not in response.text
    return found


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for found, v in samples.get(name, []) if all(found.get(k) == w for k, w in labels.items()))


def test_metrics_count_real_traffic_with_bounded_labels(metered: Server, upstream: Upstream) -> None:
    """Proxied calls, refreshes, token reads and connection counts show up; no id, token or parameter in a label."""
    api = {
        "key": "metered",
        "name": "Metered",
        "parameters": [{"name": "secretParam", "secret": True}],
        "auth": {"type": "api_token"},
        "token": {"in": "header", "name": "X-Api-Key", "template": "{token}"},
        "request": {"base_url": f"{upstream.url}/v1", "headers": {"X-Secret": "{secretParam}"}},
    }
    metered.integration(api)
    cid = metered.connect("metered", credentials={"token": API_TOKEN}, parameters={"secretParam": SECRET_PARAM})
    logins = {
        "key": "meteredlogin",
        "name": "Login",
        "auth": {
            "type": "custom_token",
            "token_url": f"{upstream.url}/login",
            "token_response": {"access_token": "token"},
        },
        "request": {"base_url": upstream.url},
    }
    metered.integration(logins)
    login_cid = metered.connect("meteredlogin")

    for _ in range(3):
        assert httpx.get(f"{metered.url}/proxy/{cid}/items?id=x", headers=metered.headers).status_code == 200
    upstream.state.statuses.append((503, {}))
    assert httpx.post(f"{metered.url}/proxy/{cid}/items", headers=metered.headers, json={}).status_code == 503
    assert httpx.get(f"{metered.url}/proxy/{cid}/x", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{metered.url}/proxy/{'f' * 32}/x", headers=metered.headers).status_code == 404
    # The upstream rejects the token: refreshed once (the login endpoint again) and retried.
    upstream.state.valid_tokens = set()
    assert httpx.get(f"{metered.url}/proxy/{login_cid}/protected", headers=metered.headers).status_code == 200
    # The login endpoint now refuses: the refresh fails for good and the connection needs re-authorization.
    upstream.state.login_status = 400
    assert httpx.post(f"{metered.url}/connections/{login_cid}/refresh", headers=metered.headers).status_code >= 400
    assert httpx.get(f"{metered.url}/proxy/{login_cid}/protected", headers=metered.headers).status_code == 409
    assert httpx.get(f"{metered.url}/connections/{cid}/token", headers=metered.headers).status_code == 200
    assert httpx.get(f"{metered.url}/connections/{'e' * 32}/token", headers=metered.headers).status_code == 404

    samples = _samples(metered)
    requests = "authbridge_proxy_requests_total"
    assert _value(samples, requests, integration="metered", method="read", status="2xx", origin="upstream") == 3
    assert _value(samples, requests, integration="metered", method="write", status="5xx", origin="upstream") == 1
    assert _value(samples, requests, integration="meteredlogin", status="2xx") == 1
    assert _value(samples, requests, integration="_none", status="4xx", origin="authbridge") == 3
    duration = "authbridge_proxy_request_duration_seconds_count"
    assert _value(samples, duration, integration="metered", method="read", status="2xx") == 3
    assert _value(samples, "authbridge_upstream_duration_seconds_count", integration="metered") == 4
    assert _value(samples, "authbridge_refreshes_total", integration="meteredlogin", outcome="ok") == 1
    assert _value(samples, "authbridge_refreshes_total", integration="meteredlogin", outcome="needs_reauth") == 1
    token_calls = "authbridge_token_endpoint_duration_seconds_count"
    # The connection's first token, the refresh, the refused refresh.
    assert _value(samples, token_calls, integration="meteredlogin") == 3
    assert _value(samples, token_calls, integration="meteredlogin", outcome="error") == 1
    assert _value(samples, "authbridge_token_reads_total", outcome="ok") == 1
    assert _value(samples, "authbridge_token_reads_total", outcome="not_found") == 1
    assert _value(samples, "authbridge_connections", status="active") >= 1
    assert _value(samples, "authbridge_connections", status="needs_reauth") == 1
    assert _value(samples, "authbridge_connections", status="revoked") == 0
    assert "authbridge_webhook_backlog" in samples
    assert "authbridge_event_loop_lag_seconds_count" in samples

    every_label = {v for rows in samples.values() for labels, _ in rows for v in labels.values()}
    assert cid not in every_label and login_cid not in every_label
    assert not any(SECRET_PARAM in v or API_TOKEN in v or "items" in v for v in every_label)


def test_metrics_need_their_token(metered: Server) -> None:
    """No token, a wrong one, or an API key instead: 401 in the API's error shape, and no metric in the body."""
    for headers in ({}, {"Authorization": "Bearer not-the-token"}, metered.headers, {"Authorization": METRICS_TOKEN}):
        response = httpx.get(f"{metered.url}/metrics", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthenticated"
        assert "authbridge_" not in response.text


def test_metrics_are_off_without_a_token_or_an_admin_listener(server: Server) -> None:
    """A server with neither AUTHBRIDGE_METRICS_TOKEN nor an admin listener serves no metrics at all."""
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 404
    assert "AUTHBRIDGE_METRICS_TOKEN" in response.json()["error"]["message"]


def test_a_short_metrics_token_is_refused_at_start(tmp_path: Path) -> None:
    """A guessable metrics token stops the server from starting, naming the variable."""
    import subprocess
    import sys

    env = server_env(AUTHBRIDGE_DATA_DIR=str(tmp_path / "data"), AUTHBRIDGE_METRICS_TOKEN="short")
    done = subprocess.run(
        [sys.executable, "-m", "authbridge", "run", "--port", "1"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode != 0
    assert b"AUTHBRIDGE_METRICS_TOKEN is shorter than 16" in done.stderr
    assert b"short" not in done.stderr.replace(b"shorter", b"")


__all__: typing.Sequence[str] = ()
