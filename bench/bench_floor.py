"""The floor: what the design card alone costs on this machine, under the load `bench_http.py` applies.

    .venv/bin/python bench/bench_floor.py [--seconds 10]

Serves bench/floor_app.py with uvicorn (one worker, as `agentops serve`) twice — FastAPI alone, then
FastAPI with a nine-node no-op LangGraph graph and one durable SQLite checkpoint per request — and puts
the same closed-loop load on it (1 and 16 connections). No request AgentOps serves can be cheaper than
the second row: it is the figure to hold a latency or throughput goal against. Not a test: numbers
depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_http import closed_loop, cpu_seconds
from bench_load import free_port

BENCH = Path(__file__).resolve().parent


def serve(with_graph: bool, home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {"FLOOR_GRAPH": "1" if with_graph else "0", "FLOOR_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "floor_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=BENCH,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("the floor app exited at start-up")
        try:
            httpx.get(f"{url}/docs", timeout=5)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    sys.exit("the floor app did not start in 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="per row")
    args = parser.parse_args()

    rows = []
    for name, with_graph in (("FastAPI + uvicorn", False), ("… + 9-node LangGraph, SQLite checkpoint (exit)", True)):
        with tempfile.TemporaryDirectory() as home:
            process, url = serve(with_graph, Path(home))
            try:
                asyncio.run(closed_loop([url], "floor", ["prod"], 2, 2))  # warm up
                for connections in (1, 16):
                    cpu = cpu_seconds(process.pid)
                    result = asyncio.run(closed_loop([url], "floor", ["prod"], connections, args.seconds))
                    result["cpu_ms"] = (cpu_seconds(process.pid) - cpu) * 1000 / max(result["requests"], 1)
                    rows.append({"app": name, "connections": connections} | result)
                    print(rows[-1], flush=True)
            finally:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)

    print(f"\n{platform.node()}, {os.cpu_count()} cores, {args.seconds:.0f} s per row, closed loop, load generator on the same machine\n")
    print("| app | connections | 2xx/s | p50 (ms) | p99 (ms) | non-2xx | server CPU ms/request |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['app']} | {r['connections']} | {r['ok_per_s']:.1f} | {r['p50']:.1f} | {r['p99']:.0f} | "
            f"{r['errors']} of {r['requests']} | {r['cpu_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
