"""``rate_limit`` through the running server: waits and retries, per-connection slots, pacing, hostile providers.

The waiting rules themselves are unit-tested in ``tests/broker/test_limits.py``; the Bridge's in
``tests/sdk/test_bridge_limits.py``.
"""

from __future__ import annotations

import concurrent.futures
import time
import typing
from collections.abc import Iterator
from email.utils import formatdate

import httpx
import pytest

from tests.proxy.conftest import Server
from tests.proxy.limits_upstream import LimitsState, make_app
from tests.proxy.upstream import free_port, serve

TOKEN = "limits-api-token-0123456789"


class Limits(typing.NamedTuple):
    url: str
    state: LimitsState


@pytest.fixture(scope="module")
def limits_server() -> Iterator[Limits]:
    state = LimitsState()
    with serve(make_app(state), free_port()) as url:
        yield Limits(url, state)


@pytest.fixture
def limits(limits_server: Limits) -> Limits:
    limits_server.state.reset()
    return limits_server


def _connect(server: Server, limits: Limits, key: str, rate_limit: typing.Mapping[str, object] | None) -> str:
    spec: dict[str, object] = {
        "key": key,
        "name": key,
        "auth": {"type": "api_token"},
        "token": {"in": "header", "name": "X-Api-Key", "template": "{token}"},
        "request": {"base_url": f"{limits.url}/v1"},
    }
    if rate_limit is not None:
        spec["rate_limit"] = rate_limit
    server.integration(spec)
    return server.connect(key, credentials={"token": TOKEN})


def _get(server: Server, cid: str, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{server.url}/proxy/{cid}/{path}", headers={**server.headers, **headers}, timeout=30)


def test_waits_for_retry_after_and_retries(server: Server, limits: Limits) -> None:
    """A 429 with Retry-After (seconds, then an HTTP date) is waited out and retried; the caller gets the 200."""
    cid = _connect(server, limits, "rlbasic", {"retry_on": [429, 503], "max_wait": "10s"})
    limits.state.queue = [
        (429, {"Retry-After": "0"}, b"{}"),
        (503, {"Retry-After": formatdate(time.time() + 1, usegmt=True)}, b"{}"),
    ]
    response = _get(server, cid, "limited")
    assert response.status_code == 200, response.text
    assert limits.state.hits("/limited") == 3
    assert {s["key"] for s in limits.state.seen} == {TOKEN}


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ({"header": "X-RateLimit-Reset", "format": "unix"}, lambda: str(int(time.time()))),
        ({"header": "RateLimit-Reset", "format": "seconds"}, lambda: "0"),
        ({"header": "X-Reset-Ms", "format": "unix_ms"}, lambda: str(int(time.time() * 1000))),
    ],
)
def test_reads_the_declared_reset_header(
    server: Server, limits: Limits, source: dict[str, str], value: typing.Callable[[], str]
) -> None:
    """A provider's own reset header, as an epoch or a delta as declared, says how long to wait."""
    cid = _connect(server, limits, "rlreset", {"wait_from": [source], "max_wait": "5s"})
    limits.state.queue = [(429, {source["header"]: value()}, b"{}")]
    assert _get(server, cid, "limited").status_code == 200
    assert limits.state.hits("/limited") == 2


def test_a_wait_in_the_body(server: Server, limits: Limits) -> None:
    """``wait_from: {body: ...}`` reads the wait from the 429's JSON."""
    cid = _connect(server, limits, "rlbody", {"wait_from": [{"body": "error.retry_after"}]})
    limits.state.queue = [(429, {}, b'{"error": {"retry_after": 0.05}}')]
    assert _get(server, cid, "limited").status_code == 200
    assert limits.state.hits("/limited") == 2


def test_a_wait_past_max_wait_goes_to_the_caller_at_once(server: Server, limits: Limits) -> None:
    """A huge Retry-After is not waited: the caller gets the provider's 429 and its Retry-After, sent once."""
    cid = _connect(server, limits, "rlhuge", {"max_wait": "2s"})
    limits.state.queue = [(429, {"Retry-After": "999999"}, b'{"error": "slow down"}')]
    response = _get(server, cid, "limited")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "999999"
    assert response.json() == {"error": "slow down"}
    assert limits.state.hits("/limited") == 1


def test_a_reset_header_becomes_a_retry_after_for_the_caller(server: Server, limits: Limits) -> None:
    """Given up on, an answer with only a reset instant gets a Retry-After the caller can act on."""
    cid = _connect(server, limits, "rlhint", {"wait_from": [{"header": "X-RateLimit-Reset", "format": "unix"}]})
    limits.state.queue = [(429, {"X-RateLimit-Reset": str(int(time.time()) + 3600)}, b"{}")]
    response = _get(server, cid, "limited")
    assert response.status_code == 429
    assert 3500 <= int(response.headers["retry-after"]) <= 3601


@pytest.mark.parametrize("garbage", ["-5", "soon", "nan", "Mon, 99 Foo 2024 99:99:99 GMT", "1e400"])
def test_hostile_waits_fall_through_to_the_next_source(server: Server, limits: Limits, garbage: str) -> None:
    """A negative wait reads as 0; garbage, NaN and infinity are skipped for the next declared source."""
    cid = _connect(
        server,
        limits,
        "rlgarbage",
        {"wait_from": [{"header": "Retry-After"}, {"header": "X-Next", "format": "seconds"}], "max_wait": "3s"},
    )
    limits.state.queue = [(429, {"Retry-After": garbage, "X-Next": "0"}, b"{}")]
    assert _get(server, cid, "limited").status_code == 200
    assert limits.state.hits("/limited") == 2


def test_no_readable_wait_backs_off_within_the_budget(server: Server, limits: Limits) -> None:
    """With nothing readable the backoff (from 0.5 s) exceeds a 0.2 s budget: the 429 goes back untouched."""
    cid = _connect(server, limits, "rlnowait", {"max_wait": "200ms"})
    limits.state.queue = [(429, {"Retry-After": "garbage"}, b"{}")]
    assert _get(server, cid, "limited").status_code == 429
    assert limits.state.hits("/limited") == 1


def test_non_idempotent_requests_are_never_replayed(server: Server, limits: Limits) -> None:
    """A POST answered 429 is returned as it came, even with Retry-After: 0."""
    cid = _connect(server, limits, "rlpost", {})
    limits.state.queue = [(429, {"Retry-After": "0"}, b"{}")]
    headers = {**server.headers, "X-AuthBridge-Retries": "many"}  # not read for a POST
    response = httpx.post(f"{server.url}/proxy/{cid}/limited", json={"a": 1}, headers=headers)
    assert response.status_code == 429
    assert limits.state.hits("/limited") == 1


def test_the_caller_opts_out_or_limits_the_wait(server: Server, limits: Limits) -> None:
    """X-AuthBridge-Retries: 0 and X-AuthBridge-Max-Wait: 0 each turn waiting off; a bad Max-Wait is a 400."""
    cid = _connect(server, limits, "rloptout", {"max_retries": 3})
    limits.state.queue = [(429, {"Retry-After": "0"}, b"{}"), (429, {"Retry-After": "1"}, b"{}")]
    assert _get(server, cid, "limited", **{"X-AuthBridge-Retries": "0"}).status_code == 429
    assert _get(server, cid, "limited", **{"X-AuthBridge-Max-Wait": "0.5"}).status_code == 429
    assert limits.state.hits("/limited") == 2
    bad = _get(server, cid, "limited", **{"X-AuthBridge-Max-Wait": "forever"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_max_wait"
    assert limits.state.hits("/limited") == 2
    assert all("x-authbridge" not in str(s) for s in limits.state.seen)


def test_max_retries_bounds_the_attempts(server: Server, limits: Limits) -> None:
    """``max_retries: 2``: three 429s in a row send the third back."""
    cid = _connect(server, limits, "rlretries", {"max_retries": 2})
    limits.state.queue = [(429, {"Retry-After": "0"}, b"{}")] * 3
    assert _get(server, cid, "limited").status_code == 429
    assert limits.state.hits("/limited") == 3


def test_max_concurrent_caps_what_the_upstream_sees(server: Server, limits: Limits) -> None:
    """Eight parallel requests on a connection with ``max_concurrent: 2``: the upstream never has more than 2."""
    cid = _connect(server, limits, "rlconc", {"max_concurrent": 2, "queue_timeout": "60s"})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: _get(server, cid, "slow").status_code, range(8)))
    assert statuses == [200] * 8
    assert limits.state.max_in_flight == 2


def test_a_full_queue_answers_a_clear_429(server: Server, limits: Limits) -> None:
    """With the one slot held, a second caller waits ``queue_timeout`` and gets AuthBridge's own 429."""
    cid = _connect(server, limits, "rlqueue", {"max_concurrent": 1, "queue_timeout": "200ms"})
    limits.state.hold = True
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(_get, server, cid, "slow")
        deadline = time.time() + 20
        while limits.state.in_flight == 0 and time.time() < deadline:
            time.sleep(0.01)
        second = _get(server, cid, "slow")
        limits.state.hold = False
        assert first.result().status_code == 200
    assert second.status_code == 429
    error = second.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["side"] == "authbridge"
    assert "max_concurrent" in error["message"]
    assert second.headers["retry-after"] == "1"
    assert limits.state.hits("/slow") == 1


def test_pacing_refuses_what_would_wait_too_long(server: Server, limits: Limits) -> None:
    """``pace: 1 per 10s`` with no queueing: the first request goes, the next one is a 429 with Retry-After."""
    cid = _connect(server, limits, "rlpace", {"pace": {"requests": 1, "per": "10s"}, "queue_timeout": "0s"})
    assert _get(server, cid, "limited").status_code == 200
    paced = _get(server, cid, "limited")
    assert paced.status_code == 429
    assert paced.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(paced.headers["retry-after"]) <= 10
    assert limits.state.hits("/limited") == 1


def test_without_rate_limit_nothing_changes(server: Server, limits: Limits) -> None:
    """An integration without ``rate_limit`` relays a 429 as before (blind retries only on request)."""
    cid = _connect(server, limits, "rlnone", None)
    limits.state.queue = [(429, {"Retry-After": "0"}, b"{}"), (429, {"Retry-After": "0"}, b"{}")]
    assert _get(server, cid, "limited").status_code == 429
    assert _get(server, cid, "limited", **{"X-AuthBridge-Retries": "1"}).status_code == 200
    assert limits.state.hits("/limited") == 3


def test_a_403_is_a_rate_limit_only_when_the_answer_says_so(server: Server, limits: Limits) -> None:
    """GitHub's style: a 403 with the remaining count at 0 is waited out; a plain 403 is relayed at once."""
    rule = {"retry_on": [403, 429], "remaining_header": "X-RateLimit-Remaining",
            "wait_from": [{"header": "X-RateLimit-Reset", "format": "unix"}]}  # fmt: skip
    cid = _connect(server, limits, "rl403", rule)
    reset = str(int(time.time()))
    limits.state.queue = [
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}, b"{}"),
        (403, {"X-RateLimit-Remaining": "4999", "X-RateLimit-Reset": reset}, b'{"message": "Must have admin rights"}'),
    ]
    assert _get(server, cid, "limited").status_code == 403
    assert limits.state.hits("/limited") == 2
