"""Instructions per refresh of the background refresher, counted by valgrind (repeatable where timings are not).

    .venv/bin/python benchmarks/refresh_instructions.py [--sizes 320 960]      # needs valgrind

Timings of the refresh storm move by 10-25 % from run to run on a small shared machine; a change worth
a few percent is measured here instead. For each size: the storm's set-up (``refresh_storm.storm``: a
temporary PostgreSQL database with that many due connections, the grant counter on loopback), then a
child process running ``BackgroundRefresher.run_once`` until nothing is due, on the loop
``authbridge refresher`` uses, under ``valgrind --tool=callgrind``. The difference of the two counts
over the difference of the sizes is the instructions of one refresh (claim, token call, store),
start-up left out; it repeats to about 1 %. Slow: about a minute per size.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refresh_storm

from authbridge.app import loop_options


def child(env: dict[str, str]) -> None:
    """Refresh every due connection of the database ``env`` names, as ``authbridge refresher`` would."""

    async def work() -> None:
        async with refresh_storm.refresher_for(env, 32) as refresher:
            while await refresher.run_once():
                pass

    anyio.run(work, backend_options=loop_options())


def count(postgres: str, size: int) -> int:
    """Instructions of a child refreshing ``size`` due connections (asserting each got exactly one grant)."""
    with refresh_storm.storm(postgres, "1", size, 32) as setup, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__, "--child"]
        env = {**os.environ, "REFRESH_INSTRUCTIONS_ENV": json.dumps(setup.env)}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            raise SystemExit(f"the refresher under valgrind failed:\n{done.stderr[-2000:]}")
        grants = setup.grants_after()
        if grants["total"] != size:
            raise SystemExit(f"{grants['total']} grants for {size} due connections")
        return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=(320, 960))
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(os.environ["REFRESH_INSTRUCTIONS_ENV"]))
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    small, large = args.sizes
    counts = {size: count(args.postgres, size) for size in (small, large)}
    for size, total in counts.items():
        print(f"{size:,} refreshes: {total:,} instructions")
    print(f"instructions per refresh: {(counts[large] - counts[small]) / (large - small):,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
