"""Proxy and token-endpoint benchmark: direct to nginx, a minimal reference proxy, AuthBridge — one run.

    make bench                         # or: .venv/bin/python benchmarks/proxy.py [--seconds 5] [--passes 3]
                                       #     [--server-cpus 0] [--client-cpus 1] [--write docs/performance.md]

Starts nginx (Debian's, installed if missing) serving a small JSON file on loopback, AuthBridge
(`authbridge run`, one worker) with one API-token connection to it, and a reference proxy written
here (raw ASGI under the same uvicorn, the same aiohttp client, one header injected, nothing else).

So a loaded or starved machine shows itself instead of moving the ratios:

- the servers under test (nginx, the reference, AuthBridge) are pinned to ``--server-cpus`` and the
  load generator (wrk, one thread) to ``--client-cpus`` with ``taskset``;
- each target is warmed up before each measurement, and the order of the targets alternates between
  passes (forward, reversed, forward, ...), so a slow drift of the machine favours nobody;
- each figure is the median of ``--passes`` passes (at least 3), printed with its spread (min-max),
  and each ratio is the median of the per-pass ratios (both sides measured in the same pass);
- the CPU busy share of every core during each measurement is printed: a client core under 90 % or
  a server core near 100 % with other work on it is a starved run.

It ends with one line per target: ``target <name>: <value> (goal <op> <goal>) ok|MISSED``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import typing
from pathlib import Path

import httpx
from _common import (
    Row,
    ensure_tools,
    free_port,
    prepare,
    rss_kib,
    start_authbridge,
    start_nginx,
    start_reference,
    target_line,
    wait_http,
    write_docs,
    wrk,
)

#: (target, connections) -> one result per pass
Results = dict[tuple[str, int], list[Row]]

PROXY, TOKEN, REF_PROXY, DIRECT = "AuthBridge proxy", "GET /connections/{id}/token", "reference proxy", "direct (nginx)"


def main(argv: typing.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="wrk duration of each measurement")
    parser.add_argument("--warmup", type=float, default=1, help="wrk warm-up before each measurement (s)")
    parser.add_argument("--passes", type=int, default=3, help="passes over every target (the median is kept; >= 3)")
    parser.add_argument("--server-cpus", default="0", help="taskset CPU list of the servers under test")
    parser.add_argument("--client-cpus", default="1", help="taskset CPU list of the load generator")
    parser.add_argument("--write", type=Path, help="also write the table into this markdown file")
    args = parser.parse_args(argv)
    if args.passes < 3:
        parser.error("--passes must be at least 3 (the median of fewer says little)")
    ensure_tools()
    processes: list[subprocess.Popen[bytes]] = []
    results: Results = {}
    memory: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="ab-bench-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # nginx's workers run as another user
        try:
            nginx_port, ref_port, ab_port = free_port(), free_port(), free_port()
            processes.append(start_nginx(workdir, nginx_port, args.server_cpus))
            upstream = f"http://127.0.0.1:{nginx_port}"
            wait_http(f"{upstream}/item.json")
            processes.append(start_reference(workdir, ref_port, upstream, args.server_cpus))
            server, key, _env = start_authbridge(workdir, ab_port, args.server_cpus)
            processes.append(server)
            ab = f"http://127.0.0.1:{ab_port}"
            wait_http(f"http://127.0.0.1:{ref_port}/p/x/item.json")
            auth = {"Authorization": f"Bearer {key}"}
            cid = prepare(ab, auth, upstream)  # the proxied call checked there
            token = httpx.get(f"{ab}/connections/{cid}/token", headers=auth)
            assert token.status_code == 200 and token.json()["access_token"] == "bench-token", token.text
            memory["idle"] = rss_kib(server.pid)

            targets = {
                DIRECT: (f"{upstream}/item.json", {}),
                REF_PROXY: (f"http://127.0.0.1:{ref_port}/p/x/item.json", {}),
                PROXY: (f"{ab}/proxy/{cid}/item.json", auth),
                TOKEN: (f"{ab}/connections/{cid}/token", auth),
            }
            for number in range(args.passes):
                order = list(targets.items())
                if number % 2:
                    order.reverse()  # alternate: a drift of the machine favours nobody
                for name, (url, headers) in order:
                    for connections in (1, 32):
                        wrk(url, connections, args.warmup, headers, args.client_cpus)  # warm-up
                        row = wrk(url, connections, args.seconds, headers, args.client_cpus)
                        results.setdefault((name, connections), []).append(row)
                        print(
                            f"pass {number + 1} {name:30} c={connections:<3} {row['rps']:>9,.0f} req/s  "
                            f"p50 {row['p50']:.3f} ms  " + _busy_text(row),
                            file=sys.stderr,
                        )
                memory[f"after pass {number + 1}"] = rss_kib(server.pid)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    table = render(results, memory, args)
    print(table)
    if args.write:
        write_docs(args.write, table)
    return 0


def _busy_text(row: Row) -> str:
    return " ".join(f"{k[5:]} {v:.0f}%" for k, v in sorted(row.items()) if k.startswith("busy:"))


def _median(values: typing.Iterable[float]) -> float:
    return statistics.median(list(values))


def _spread(values: list[float], fmt: str) -> str:
    return f"{format(min(values), fmt)}-{format(max(values), fmt)}"


def render(results: Results, memory: dict[str, int], args: argparse.Namespace) -> str:
    passes = len(next(iter(results.values())))
    cores = sorted({k[5:] for rows in results.values() for row in rows for k in row if k.startswith("busy:")})
    lines = [
        f"{passes} passes of {args.seconds:g} s per target (after a {args.warmup:g} s warm-up), servers on CPU "
        f"{args.server_cpus}, wrk on CPU {args.client_cpus}; medians, spread min-max over the passes.",
        "",
        "| target | conns | req/s (median) | req/s spread | p50 ms | p50 spread | p99 ms | non-2xx | "
        + " | ".join(f"{c} busy %" for c in cores)
        + " |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in cores) + " |",
    ]
    for (name, conns), rows in results.items():
        rps, p50 = [r["rps"] for r in rows], [r["p50"] for r in rows]
        busy = " | ".join(f"{_median(r.get('busy:' + c, 0.0) for r in rows):.0f}" for c in cores)
        lines.append(
            f"| {name} | {conns} | {_median(rps):,.0f} | {_spread(rps, ',.0f')} | {_median(p50):.3f} | "
            f"{_spread(p50, '.3f')} | {_median(r['p99'] for r in rows):.3f} | {sum(r['errors'] for r in rows):.0f} "
            f"| {busy} |"
        )

    def per_pass(
        a: tuple[str, int], b: tuple[str, int], key: str, how: typing.Callable[[float, float], float]
    ) -> list[float]:
        return [how(x[key], y[key]) for x, y in zip(results[a], results[b], strict=True)]

    token_vs_proxy = per_pass((TOKEN, 32), (PROXY, 32), "rps", lambda x, y: x / y)
    token_p50 = per_pass((TOKEN, 1), (PROXY, 1), "p50", lambda x, y: x / y)
    proxy_vs_ref = per_pass((PROXY, 32), (REF_PROXY, 32), "rps", lambda x, y: x / y)
    added = per_pass((PROXY, 1), (DIRECT, 1), "p50", lambda x, y: x - y)
    proxy_vs_direct = per_pass((PROXY, 32), (DIRECT, 32), "rps", lambda x, y: x / y)
    lines += [
        "",
        f"- token endpoint / proxy throughput at 32 connections, per pass: {', '.join(f'{v:.2f}' for v in token_vs_proxy)}",
        f"- token endpoint / proxy p50 at 1 connection, per pass: {', '.join(f'{v:.2f}' for v in token_p50)}",
        f"- AuthBridge / reference throughput at 32 connections, per pass: {', '.join(f'{v:.2f}' for v in proxy_vs_ref)}",
        f"- p50 added over direct at 1 connection, per pass (ms): {', '.join(f'{v:.3f}' for v in added)}",
        f"- AuthBridge / direct throughput at 32 connections (median): {_median(proxy_vs_direct):.3f}",
        "- AuthBridge resident memory (KiB): " + ", ".join(f"{k} {v:,}" for k, v in memory.items()),
        "",
        "```",
        target_line("token-vs-proxy", _median(token_vs_proxy), ">=", 1.0),
        target_line("token-p50-vs-proxy", _median(token_p50), "<=", 1.0),
        target_line("proxy-vs-reference", _median(proxy_vs_ref), ">=", 1.0),
        target_line("proxy-added-p50-ms", _median(added), "<=", 0.25, ".3f"),
        "```",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
