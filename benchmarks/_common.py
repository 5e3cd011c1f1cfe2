"""What the benchmarks share: nginx as the upstream, the reference proxy, AuthBridge as a process, wrk pinned to a core.

Each benchmark script imports this module (``benchmarks/`` is put on ``sys.path`` by running a script in it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import typing
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BODY = json.dumps({"id": 42, "name": "widget", "tags": ["a", "b", "c"], "price": 9.99}).encode()
Row = dict[str, float]


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


def wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start_nginx(workdir: Path, port: int, cpus: str) -> subprocess.Popen[bytes]:
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
    return subprocess.Popen(pinned(cpus, [nginx, "-c", str(conf), "-p", str(workdir)]), stderr=subprocess.DEVNULL)


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


def start_reference(workdir: Path, port: int, upstream: str, cpus: str) -> subprocess.Popen[bytes]:
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
    return subprocess.Popen(pinned(cpus, command), env=env, cwd=workdir, stderr=subprocess.DEVNULL)


def start_authbridge(
    workdir: Path, port: int, cpus: str, **extra: str
) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    """``authbridge run`` (one process, background loops off) pinned to ``cpus``; its API key; its environment."""
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
    server = subprocess.Popen(pinned(cpus, [*cli, "run", "--port", str(port)]), env=env, stderr=subprocess.DEVNULL)
    return server, key.stdout.decode().strip(), env


def prepare(base: str, auth: dict[str, str], upstream: str) -> str:
    """One API-token integration and connection to nginx on a started AuthBridge; the connection's id (checked)."""
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/PID/stat), in seconds."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PostgresCPU(typing.NamedTuple):
    """A reading of PostgreSQL's CPU: each live process's own seconds, and its postmasters' reaped children's."""

    own: dict[int, float]
    reaped: float


def _stat(pid: int) -> list[str]:
    # /proc/PID/stat after the command name: [0] state, [1] ppid, ... [11] utime, [12] stime, [13] cutime, [14] cstime
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def postgres_cpu() -> PostgresCPU:
    """Read the CPU used so far by every PostgreSQL process on this machine (postmaster, backends, WAL writer...).

    Backends that exit (a pool's overflow connection, an autovacuum worker) are counted through the
    postmaster's children's CPU (``cutime``/``cstime``), which the kernel adds up as it reaps them.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    own: dict[int, float] = {}
    reaped = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = _stat(int(entry.name))
            parent = (Path(f"/proc/{fields[1]}") / "comm").read_text().strip()
        except OSError:  # gone meanwhile
            continue
        own[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
        if parent != "postgres":  # a postmaster: its reaped children's CPU
            reaped += (int(fields[13]) + int(fields[14])) / ticks
    return PostgresCPU(own, reaped)


def postgres_cpu_between(before: PostgresCPU, after: PostgresCPU) -> float:
    """CPU seconds PostgreSQL used between two ``postgres_cpu`` readings.

    Live processes count their own CPU since ``before`` (those started since, all of it); a process that
    exited in between counts through its postmaster's reaped-children total, less what it had used
    before ``before``.
    """
    live = sum(seconds - before.own.get(pid, 0.0) for pid, seconds in after.own.items())
    gone = sum(seconds for pid, seconds in before.own.items() if pid not in after.own)
    return live + (after.reaped - before.reaped) - gone


def cpu_times() -> dict[str, tuple[int, int]]:
    """Per core: (busy, total) jiffies since boot, from /proc/stat."""
    times: dict[str, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(v) for v in fields]
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            times[name] = (sum(values) - idle, sum(values))
    return times


def busy_between(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Per core, the share of time it was busy between two ``cpu_times`` readings (0-100)."""
    shares = {}
    for name, (busy, total) in after.items():
        b0, t0 = before.get(name, (0, 0))
        shares[name] = 100.0 * (busy - b0) / max(1, total - t0)
    return shares


def wrk(url: str, connections: int, seconds: float, headers: dict[str, str], cpus: str) -> Row:
    """One wrk run (one thread, pinned to ``cpus``), with each core's busy share during it."""
    command = [
        "taskset",
        "-c",
        cpus,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        url,
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    before = cpu_times()
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    busy = busy_between(before, cpu_times())
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    row = {
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "rps": rps,
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "errors": float(errors.group(1)) if errors else 0.0,
    }
    row.update({f"busy:{name}": share for name, share in busy.items()})
    return row


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def rss_kib(pid: int) -> int:
    """A process's resident memory, in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pinned(cpus: str, command: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *command]


def target_line(name: str, value: float, op: str, goal: float, fmt: str = ".2f") -> str:
    """``target name: value (goal op goal) ok|MISSED``: the form a reader and a script both read at once."""
    met = value >= goal if op == ">=" else value <= goal
    return f"target {name}: {format(value, fmt)} (goal {op} {goal:g}) {'ok' if met else 'MISSED'}"


def write_docs(path: Path, table: str) -> None:
    text = path.read_text() if path.exists() else "# Performance\n"
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    block = f"{start}\n{table}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
