"""Proxy variants in one run: metrics off and on (alternating passes), and with `--signed` the signing auth types.

    make bench-variants                # or: .venv/bin/python benchmarks/proxy_variants.py [--seconds 5] [--passes 3]
    .venv/bin/python benchmarks/proxy_variants.py --signed    # also the signing auth types (aws_sigv4, hmac_signature)

(`make bench`, benchmarks/proxy.py, is the pinned harness with the issue's target lines; this one
keeps the metrics-on/off and signed comparisons, each measured against the plain proxy in one run.)

Starts nginx (Debian's, installed if missing) serving a small JSON file on loopback, AuthBridge
(`authbridge run`, one worker) with one API-token connection to it, and a reference proxy written
here (raw ASGI under the same uvicorn, the same aiohttp client, one header injected, nothing else).
wrk (Debian's) loads each at 1 and 32 connections; the table gives requests/s, p50 and p99 latency,
and the ratios AuthBridge/reference and AuthBridge/direct. It also loads GET /connections/{id}/token.
With ``--signed`` it loads two more connections whose requests are signed (AWS SigV4 and an HMAC: nginx
does not check them, the cost measured is AuthBridge's) and times one signature in-process (timeit).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import typing
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
METRICS_TOKEN = "bench-metrics-token-0123456789"
METERED = "AuthBridge proxy, metrics on"
BODY = json.dumps({"id": 42, "name": "widget", "tags": ["a", "b", "c"], "price": 9.99}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("nginx", "nginx-light"), ("wrk", "wrk")) if shutil.which(tool) is None]
    if missing and Path("/usr/sbin/nginx").exists():
        missing = [p for p in missing if p != "nginx-light"]
    if missing:
        print(f"installing {' '.join(missing)} from Debian ...", file=sys.stderr)
        subprocess.run(
            ["apt-get", "install", "-y", *missing],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            stdout=subprocess.DEVNULL,
        )


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start_nginx(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    (workdir / "www").mkdir()
    (workdir / "www" / "item.json").write_bytes(BODY)
    (workdir / "logs").mkdir()
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {workdir}/tmp;
  proxy_temp_path {workdir}/tmp;
  fastcgi_temp_path {workdir}/tmp;
  uwsgi_temp_path {workdir}/tmp;
  scgi_temp_path {workdir}/tmp;
  server {{
    listen 127.0.0.1:{port};
    location / {{ root {workdir}/www; default_type application/json; }}
  }}
}}
"""
    )
    (workdir / "tmp").mkdir()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return subprocess.Popen([nginx, "-c", str(conf), "-p", str(workdir)], stderr=subprocess.DEVNULL)


REFERENCE = """
import aiohttp, os
UPSTREAM = os.environ["UPSTREAM"]
TOKEN = os.environ["TOKEN"]
session = None

async def app(scope, receive, send):
    global session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                session = aiohttp.ClientSession(auto_decompress=False)
                await send({"type": "lifespan.startup.complete"})
            else:
                await session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"].split("/", 3)[3]
    async with session.request(scope["method"], f"{UPSTREAM}/{path}", headers={"X-Api-Key": TOKEN}) as response:
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [(k, v) for k, v in response.raw_headers if k.lower() not in (b"connection", b"transfer-encoding")]})
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
"""


def start_reference(workdir: Path, port: int, upstream: str) -> subprocess.Popen[bytes]:
    (workdir / "reference_proxy.py").write_text(REFERENCE)
    env = {**os.environ, "UPSTREAM": upstream, "TOKEN": "bench-token", "PYTHONPATH": str(workdir)}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "reference_proxy:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return subprocess.Popen(command, env=env, cwd=workdir, stderr=subprocess.DEVNULL)


def start_authbridge(workdir: Path, port: int, **extra: str) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")},
        "AUTHBRIDGE_DATA_DIR": str(workdir / f"data-{port}"),
        **extra,
        "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTHBRIDGE_BACKGROUND_TASKS": "false",
        "AUTHBRIDGE_LOG_LEVEL": "warning",
    }
    cli = [sys.executable, "-m", "authbridge"]
    key = subprocess.run([*cli, "api-keys", "create", "--name", "bench"], env=env, capture_output=True, check=True)
    server = subprocess.Popen([*cli, "run", "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    return server, key.stdout.decode().strip(), env


def prepare(base: str, auth: dict[str, str], upstream: str) -> str:
    """One API-token integration and connection to nginx; the connection's id (a proxied call checked)."""
    wait_http(f"{base}/health")
    spec = {
        "key": "bench",
        "name": "bench",
        "auth": {"type": "api_token"},
        "token": {"in": "header", "name": "X-Api-Key", "template": "{token}"},
        "request": {"base_url": upstream},
    }
    httpx.put(f"{base}/integrations/bench", json=spec, headers=auth).raise_for_status()
    created = httpx.post(
        f"{base}/connections",
        json={"integration": "bench", "name": "bench", "credentials": {"token": "bench-token"}},
        headers=auth,
    )
    created.raise_for_status()
    cid = str(created.json()["id"])
    check = httpx.get(f"{base}/proxy/{cid}/item.json", headers=auth)
    assert check.status_code == 200 and check.content == BODY, check.text
    return cid


def wrk(url: str, connections: int, seconds: int, headers: dict[str, str]) -> dict[str, float]:
    threads = 1 if connections == 1 else 2
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "errors": float(errors.group(1)) if errors else 0.0,
        "requests": total,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/PID/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main(argv: typing.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration of each measurement")
    parser.add_argument("--write", type=Path, help="also write the table into this markdown file")
    parser.add_argument(
        "--signed", action="store_true", help="also load signed connections (aws_sigv4, hmac_signature)"
    )
    parser.add_argument("--passes", type=int, default=3, help="alternating passes of metrics off and on")
    args = parser.parse_args(argv)
    ensure_tools()
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="ab-bench-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # nginx's workers run as another user
        try:
            nginx_port, ref_port, ab_port = free_port(), free_port(), free_port()
            processes.append(start_nginx(workdir, nginx_port))
            upstream = f"http://127.0.0.1:{nginx_port}"
            wait_http(f"{upstream}/item.json")
            processes.append(start_reference(workdir, ref_port, upstream))
            metered_port = free_port()
            server, key, _env = start_authbridge(workdir, ab_port)
            processes.append(server)
            metered, metered_key, _ = start_authbridge(workdir, metered_port, AUTHBRIDGE_METRICS_TOKEN=METRICS_TOKEN)
            processes.append(metered)
            ab = f"http://127.0.0.1:{ab_port}"
            wait_http(f"http://127.0.0.1:{ref_port}/p/x/item.json")
            auth = {"Authorization": f"Bearer {key}"}
            cid = prepare(ab, auth, upstream)
            metered_auth = {"Authorization": f"Bearer {metered_key}"}
            metered_cid = prepare(f"http://127.0.0.1:{metered_port}", metered_auth, upstream)

            targets = {
                "direct (nginx)": (f"{upstream}/item.json", {}),
                "reference proxy": (f"http://127.0.0.1:{ref_port}/p/x/item.json", {}),
                "AuthBridge proxy": (f"{ab}/proxy/{cid}/item.json", auth),
                METERED: (f"http://127.0.0.1:{metered_port}/proxy/{metered_cid}/item.json", metered_auth),
            }
            if args.signed:
                for name, (signed_spec, credentials) in SIGNED.items():
                    httpx.put(
                        f"{ab}/integrations/{signed_spec['key']}",
                        json={**signed_spec, "request": {"base_url": upstream}},
                        headers=auth,
                    ).raise_for_status()
                    made = httpx.post(
                        f"{ab}/connections",
                        json={"integration": signed_spec["key"], "name": name, "credentials": credentials},
                        headers=auth,
                    )
                    made.raise_for_status()
                    signed_url = f"{ab}/proxy/{made.json()['id']}/item.json?a=1&b=x%20y"
                    answer = httpx.get(signed_url, headers=auth)
                    assert answer.status_code == 200 and answer.content == BODY, answer.text
                    targets[f"AuthBridge proxy ({name})"] = (signed_url, auth)
            results: dict[tuple[str, int], dict[str, float]] = {}
            for url, headers in targets.values():
                wrk(url, 8, 1, headers)  # warm-up
            # Metrics off and on are measured in alternation, `--passes` times: the machine's load moves.
            passes: list[float] = []
            # CPU time per request of each AuthBridge process: far less moved by other load than req/s.
            pids = {"AuthBridge proxy": server.pid, METERED: metered.pid}
            cpu: dict[str, list[float]] = {"AuthBridge proxy": [], METERED: []}
            for number in range(args.passes):
                order = list(targets.items())
                if number % 2:  # every other pass measures metrics on first: no order bias
                    order.reverse()
                for name, (url, headers) in order:
                    for connections in (1, 32):
                        if number and (name not in ("AuthBridge proxy", METERED) or connections == 1):
                            continue
                        pid = pids.get(name)
                        before = cpu_seconds(pid) if pid else 0.0
                        result = wrk(url, connections, args.seconds, headers)
                        if pid and connections == 32:
                            cpu[name].append((cpu_seconds(pid) - before) / result["requests"] * 1e6)
                        results[(name, connections)] = result
                passes.append(results[(METERED, 32)]["rps"] / results[("AuthBridge proxy", 32)]["rps"])
            token_url = f"{ab}/connections/{cid}/token"
            wrk(token_url, 8, 1, auth)
            token = {c: wrk(token_url, c, args.seconds, auth) for c in (1, 32)}
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    table = render(results, token, passes, cpu)
    if args.signed:
        table += "\n" + render_signed(results)
    print(table)
    if args.write:
        write_docs(args.write, table)
    return 0


def render(
    results: dict[tuple[str, int], dict[str, float]],
    token: dict[int, dict[str, float]],
    passes: list[float],
    cpu: dict[str, list[float]],
) -> str:
    lines = ["| target | conns | req/s | p50 ms | p99 ms | non-2xx |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for (name, conns), r in results.items():
        lines.append(f"| {name} | {conns} | {r['rps']:,.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {r['errors']:.0f} |")
    for conns, r in token.items():
        lines.append(
            f"| GET /connections/{{id}}/token | {conns} | {r['rps']:,.0f} | {r['p50']:.3f} | {r['p99']:.3f} | "
            f"{r['errors']:.0f} |"
        )
    ab32, ref32, direct32 = (results[(n, 32)]["rps"] for n in ("AuthBridge proxy", "reference proxy", "direct (nginx)"))
    added = results[("AuthBridge proxy", 1)]["p50"] - results[("direct (nginx)", 1)]["p50"]
    lines += [
        "",
        f"- AuthBridge / reference throughput at 32 connections: **{ab32 / ref32:.2f}** (target ≥ 0.8)",
        f"- AuthBridge / direct throughput at 32 connections: **{ab32 / direct32:.3f}**",
        f"- p50 added over direct at 1 connection: **{added:.3f} ms** (target ≤ 0.5 ms)",
        f"- metrics on / off throughput at 32 connections, {len(passes)} alternating passes: "
        f"**{statistics.median(passes):.3f}** median (min {min(passes):.3f}, max {max(passes):.3f}; target ≥ 0.95); "
        f"each pass: {', '.join(f'{r:.2f}' for r in passes)}",
        f"- CPU µs per proxied request at 32 connections (median of the passes): metrics off "
        f"**{statistics.median(cpu['AuthBridge proxy']):.0f}**, on **{statistics.median(cpu[METERED]):.0f}**; "
        f"off / on: **{statistics.median(cpu['AuthBridge proxy']) / statistics.median(cpu[METERED]):.3f}** "
        f"(off: {', '.join(f'{v:.0f}' for v in cpu['AuthBridge proxy'])}; on: {', '.join(f'{v:.0f}' for v in cpu[METERED])})",
    ]
    return "\n".join(lines)


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


def render_signed(results: dict[tuple[str, int], dict[str, float]]) -> str:
    lines = [""]
    plain32, direct32 = results[("AuthBridge proxy", 32)]["rps"], results[("direct (nginx)", 32)]["rps"]
    for name, (sign_us, whole_us) in time_signatures().items():
        signed32 = results[(f"AuthBridge proxy ({name})", 32)]["rps"]
        lines.append(
            f"- {name}: signed / unsigned proxy throughput at 32 connections **{signed32 / plain32:.2f}**, "
            f"signed / direct **{signed32 / direct32:.3f}**; one signature {sign_us:.1f} µs "
            f"(with the proxy's request copy {whole_us:.1f} µs)"
        )
    return "\n".join(lines)


def write_docs(path: Path, table: str) -> None:
    text = path.read_text() if path.exists() else "# Performance\n"
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    block = f"{start}\n{table}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
