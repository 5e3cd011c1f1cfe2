"""Proxy variants in one run: metrics off and on, and with `--signed` the signing auth types.

    make bench-variants     # or: .venv/bin/python benchmarks/proxy_variants.py [--seconds 4] [--passes 5] [--signed]

(`make bench`, benchmarks/proxy.py, holds the issue's main target lines; this one measures what a
feature costs against the plain proxy, in the same run, with the same pinning and alternation.)

Starts nginx serving a small JSON file on loopback and two AuthBridge processes (`authbridge run`):
one with metrics off, one with metrics on (``AUTHBRIDGE_METRICS_TOKEN``), each with one API-token
connection to nginx. Servers are pinned to ``--server-cpus``, wrk to ``--client-cpus``; every pass
measures each target after a warm-up, the order alternating between passes. Two figures per pass:
throughput at 32 connections, and the server's CPU time per request (far less moved by other load
on the machine than requests/s). With ``--signed`` two more connections of the metrics-off process
sign every request (AWS SigV4, an HMAC; nginx does not check them: the cost measured is AuthBridge's),
and one signature is timed in-process. The metrics' own work per request is timed in-process too.

It ends with ``target metrics-on-vs-off: <median throughput ratio> (goal >= 0.95) ok|MISSED``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import typing
from pathlib import Path

import httpx
from _common import (
    BODY,
    cpu_seconds,
    ensure_tools,
    free_port,
    prepare,
    start_authbridge,
    start_nginx,
    target_line,
    wait_http,
    write_docs,
    wrk,
)

METRICS_TOKEN = "bench-metrics-token-0123456789"
PLAIN, METERED = "AuthBridge proxy, metrics off", "AuthBridge proxy, metrics on"


def main(argv: typing.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4, help="wrk duration of each measurement")
    parser.add_argument("--warmup", type=float, default=1, help="wrk warm-up before each measurement (s)")
    parser.add_argument("--passes", type=int, default=5, help="alternating passes (the median is kept; >= 3)")
    parser.add_argument("--server-cpus", default="0", help="taskset CPU list of the servers under test")
    parser.add_argument("--client-cpus", default="1", help="taskset CPU list of the load generator")
    parser.add_argument("--signed", action="store_true", help="also load signed connections")
    parser.add_argument("--write", type=Path, help="also write the table into this markdown file")
    args = parser.parse_args(argv)
    if args.passes < 3:
        parser.error("--passes must be at least 3")
    ensure_tools()
    processes: list[subprocess.Popen[bytes]] = []
    rows: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="ab-bench-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # nginx's workers run as another user
        try:
            nginx_port, plain_port, metered_port = free_port(), free_port(), free_port()
            processes.append(start_nginx(workdir, nginx_port, args.server_cpus))
            upstream = f"http://127.0.0.1:{nginx_port}"
            wait_http(f"{upstream}/item.json")
            plain, key, _ = start_authbridge(workdir, plain_port, args.server_cpus)
            metered, metered_key, _ = start_authbridge(
                workdir, metered_port, args.server_cpus, AUTHBRIDGE_METRICS_TOKEN=METRICS_TOKEN
            )
            processes += [plain, metered]
            base, metered_base = f"http://127.0.0.1:{plain_port}", f"http://127.0.0.1:{metered_port}"
            auth, metered_auth = {"Authorization": f"Bearer {key}"}, {"Authorization": f"Bearer {metered_key}"}
            cid = prepare(base, auth, upstream)
            metered_cid = prepare(metered_base, metered_auth, upstream)
            targets: dict[str, tuple[str, dict[str, str], int]] = {
                PLAIN: (f"{base}/proxy/{cid}/item.json", auth, plain.pid),
                METERED: (f"{metered_base}/proxy/{metered_cid}/item.json", metered_auth, metered.pid),
            }
            if args.signed:
                for name, url in add_signed(base, auth, upstream).items():
                    targets[f"AuthBridge proxy ({name})"] = (url, auth, plain.pid)
            for number in range(args.passes):
                order = list(targets.items())
                if number % 2:
                    order.reverse()  # alternate: a drift of the machine favours nobody
                for name, (url, headers, pid) in order:
                    wrk(url, 32, args.warmup, headers, args.client_cpus)
                    before = cpu_seconds(pid)
                    row = wrk(url, 32, args.seconds, headers, args.client_cpus)
                    row["cpu_us"] = (cpu_seconds(pid) - before) / max(1.0, row["requests"]) * 1e6
                    rows.setdefault(name, []).append(row)
                    print(
                        f"pass {number + 1} {name:40} {row['rps']:>9,.0f} req/s  {row['cpu_us']:.0f} µs CPU/request",
                        file=sys.stderr,
                    )
            scraped = httpx.get(f"{metered_base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert "authbridge_proxy_requests" in scraped.text, scraped.text[:200]
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    table = render(rows, args)
    print(table)
    if args.write:
        write_docs(args.write, table)
    return 0


def metrics_work_us() -> float:
    """µs of the metrics' own work per proxied request (two timings, one request count and two histogram adds)."""
    from authbridge.metrics import Metrics

    metrics = Metrics()

    def per_request() -> None:
        start = time.perf_counter()
        attempt = time.perf_counter()
        metrics.upstream("bench", time.perf_counter() - attempt)
        metrics.proxied("bench", "GET", 200, "upstream", time.perf_counter() - start)

    number = 100_000
    return min(timeit.repeat(per_request, number=number, repeat=7)) / number * 1e6


def render(rows: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> str:
    passes = len(rows[PLAIN])
    lines = [
        f"{passes} alternating passes of {args.seconds:g} s at 32 connections (after a {args.warmup:g} s warm-up), "
        f"servers on CPU {args.server_cpus}, wrk on CPU {args.client_cpus}; medians, spread min-max.",
        "",
        "| target | req/s (median) | req/s spread | CPU µs/request (median) | CPU spread | p50 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, values in rows.items():
        rps, cpu = [r["rps"] for r in values], [r["cpu_us"] for r in values]
        lines.append(
            f"| {name} | {statistics.median(rps):,.0f} | {min(rps):,.0f}-{max(rps):,.0f} | "
            f"{statistics.median(cpu):.0f} | {min(cpu):.0f}-{max(cpu):.0f} | "
            f"{statistics.median(r['p50'] for r in values):.3f} |"
        )

    def ratios(name: str, key: str) -> list[float]:
        return [a[key] / b[key] for a, b in zip(rows[name], rows[PLAIN], strict=True)]

    throughput = ratios(METERED, "rps")
    cpu = [1 / v for v in ratios(METERED, "cpu_us")]
    work = metrics_work_us()
    lines += [
        "",
        f"- metrics on / off throughput, per pass: {', '.join(f'{v:.3f}' for v in throughput)}",
        f"- metrics off / on CPU per request, per pass: {', '.join(f'{v:.3f}' for v in cpu)}",
        f"- the metrics' own work per request, timed in-process: {work:.2f} µs "
        f"({100 * work / statistics.median(r['cpu_us'] for r in rows[PLAIN]):.1f} % of a proxied request's CPU)",
    ]
    if args.signed:
        lines += render_signed(rows)
    lines += [
        "",
        "```",
        target_line("metrics-on-vs-off", statistics.median(throughput), ">=", 0.95, ".3f"),
        target_line("metrics-cpu-off-vs-on", statistics.median(cpu), ">=", 0.95, ".3f"),
        "```",
    ]
    return "\n".join(lines)


def add_signed(base: str, auth: dict[str, str], upstream: str) -> dict[str, str]:
    """A connection per signing auth type on AuthBridge at ``base``: name -> a proxied URL (checked once)."""
    urls = {}
    for name, (signed_spec, credentials) in SIGNED.items():
        httpx.put(
            f"{base}/integrations/{signed_spec['key']}",
            json={**signed_spec, "request": {"base_url": upstream}},
            headers=auth,
        ).raise_for_status()
        made = httpx.post(
            f"{base}/connections",
            json={"integration": signed_spec["key"], "name": name, "credentials": credentials},
            headers=auth,
        )
        made.raise_for_status()
        url = f"{base}/proxy/{made.json()['id']}/item.json?a=1&b=x%20y"
        answer = httpx.get(url, headers=auth)
        assert answer.status_code == 200 and answer.content == BODY, answer.text
        urls[name] = url
    return urls


SIGNED: dict[str, tuple[dict[str, typing.Any], dict[str, str]]] = {
    "aws_sigv4": (
        {"key": "sigv4", "name": "SigV4", "auth": {"type": "aws_sigv4", "region": "eu-west-1", "service": "sts"}},
        {"access_key_id": "AKIDBENCH", "secret_access_key": "bench/secret+key"},
    ),
    "hmac_signature": (
        {
            "key": "hmac",
            "name": "HMAC",
            "auth": {
                "type": "hmac_signature",
                "string_to_sign": "{method}\n{path}\n{query}\n{timestamp}\n{nonce}\n{body_digest}",
                "headers": {"X-Timestamp": "{timestamp}", "X-Nonce": "{nonce}"},
                "signature": {"in": "header", "name": "Authorization", "template": "HMAC {key_id}:{signature}"},
            },
        },
        {"key_id": "bench", "secret_key": "bench-secret"},
    ),
}


def time_signatures() -> dict[str, tuple[float, float]]:
    """µs per signature: the plugin's ``sign`` alone, and the proxy's whole per-attempt step (``_signed``)."""
    from authbridge.auth import AuthContext, plugin_for
    from authbridge.proxy.forward import _signed
    from authbridge.spec import validate_spec

    out: dict[str, tuple[float, float]] = {}
    for name, (spec_data, credentials) in SIGNED.items():
        spec = validate_spec({**spec_data, "request": {"base_url": "https://api.example.com"}})
        plugin, ctx = plugin_for(spec.auth), AuthContext(integration=spec, inputs=credentials)
        url, headers = "https://api.example.com/v1/item.json?a=1&b=x%20y", {"accept": "*/*", "user-agent": "bench"}

        def sign_only() -> None:
            plugin.sign(ctx, httpx.Request("GET", url, headers=headers))

        def whole() -> None:
            _signed((plugin, ctx), "GET", url, headers, b"")

        number = 5000
        out[name] = tuple(min(timeit.repeat(f, number=number, repeat=5)) / number * 1e6 for f in (sign_only, whole))  # type: ignore[assignment]
    return out


def render_signed(rows: dict[str, list[dict[str, float]]]) -> list[str]:
    lines = []
    plain = statistics.median(r["rps"] for r in rows[PLAIN])
    for name, (sign_us, whole_us) in time_signatures().items():
        signed = statistics.median(r["rps"] for r in rows[f"AuthBridge proxy ({name})"])
        lines.append(
            f"- {name}: signed / unsigned proxy throughput **{signed / plain:.2f}**; one signature {sign_us:.1f} µs "
            f"(with the proxy's request copy {whole_us:.1f} µs)"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
