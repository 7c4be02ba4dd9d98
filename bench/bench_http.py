"""Closed-loop HTTP load on the two paths a requester takes, against real `agentops serve` processes on
127.0.0.1: SQLite (one process), and Postgres with one replica and with two.

    .venv/bin/python bench/bench_http.py [--seconds 10] [--sustain 60] [--backends sqlite,postgres,postgres2]

Paths: `prod` (POST /plans for a prod intent: plan, check, pending approval -> 201) and `staging` (a
staging intent the policy lets deploy without a human: 202 when its dry-run deploy starts, and the run
finishes in the background). Each path runs with 1 connection (p50 latency) and 16 connections
(2xx/s, errors = every non-2xx answer or dropped connection); the server's CPU time per request is
reported too, being the figure least moved by other work on the machine. Then both paths alternate on 16
connections for `--sustain` seconds, and the replicas' resident memory (VmRSS) is read before and after.
The load generator shares the machine with the server. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import tempfile
import time
from pathlib import Path

import httpx
from bench_load import drop_schema, fresh_schema, percentile, start_replica

from api.auth import create_dev_keys

INTENTS = {
    "prod": ("deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%", "prod"),
    "staging": ("roll out sentiment-bert v2 to staging on 2 ml.m5.xlarge instances", "staging"),
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used: per request, a figure other load on the machine barely moves."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def closed_loop(urls: list[str], key: str, paths: list[str], connections: int, seconds: float) -> dict[str, float]:
    """`connections` clients, each sending its next request as soon as the previous one is answered."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            base_url=urls[n % len(urls)], headers=headers, timeout=60, limits=httpx.Limits(max_connections=1)
        ) as http:
            i = n
            while time.perf_counter() < deadline:
                intent, env = INTENTS[paths[i % len(paths)]]
                i += 1
                started = time.perf_counter()
                try:
                    answer = await http.post("/plans", json={"intent": intent, "env": env})
                    ok = 200 <= answer.status_code < 300
                except httpx.TransportError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(connections)))
    wall = time.perf_counter() - started
    return {
        "ok_per_s": len(latencies) / wall,
        "p50": percentile(latencies, 0.5) * 1000 if latencies else float("nan"),
        "p99": percentile(latencies, 0.99) * 1000 if latencies else float("nan"),
        "errors": errors,
        "requests": len(latencies) + errors,
    }


def bench(name: str, replicas: int, database_url: str | None, seconds: float, sustain: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        keys = create_dev_keys(Path(tmp) / "api-keys.json")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTOPS_") and k != "EXECUTE"}
        env |= {"AGENTOPS_API_KEYS_FILE": str(Path(tmp) / "api-keys.json")}
        if database_url:
            env["AGENTOPS_DATABASE_URL"] = database_url
        started = [start_replica(Path(tmp) / f"replica-{i}", env) for i in range(replicas)]
        urls, key = [url for _, url in started], keys["alice@example.com"]
        try:
            asyncio.run(closed_loop(urls, key, ["prod", "staging"], 2, 2))  # warm up (imports, first search)
            for path in ("prod", "staging"):
                for connections in (1, 16):
                    cpu = sum(cpu_seconds(p.pid) for p, _ in started)
                    result = asyncio.run(closed_loop(urls, key, [path], connections, seconds))
                    cpu = sum(cpu_seconds(p.pid) for p, _ in started) - cpu
                    result["cpu_ms"] = cpu * 1000 / max(result["requests"], 1)
                    rows.append({"backend": name, "replicas": replicas, "path": path, "connections": connections} | result)
                    print(rows[-1], flush=True)
            if sustain:
                before, cpu = sum(rss_mb(p.pid) for p, _ in started), sum(cpu_seconds(p.pid) for p, _ in started)
                result = asyncio.run(closed_loop(urls, key, ["prod", "staging"], 16, sustain))
                after, cpu = sum(rss_mb(p.pid) for p, _ in started), sum(cpu_seconds(p.pid) for p, _ in started) - cpu
                result["cpu_ms"] = cpu * 1000 / max(result["requests"], 1)
                rows.append(
                    {"backend": name, "replicas": replicas, "path": f"both, sustained {sustain:.0f} s", "connections": 16}
                    | result
                    | {"rss_before": before, "rss_after": after}
                )
                print(rows[-1], flush=True)
        finally:
            for process, _ in started:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=90)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="per path and connection count")
    parser.add_argument("--sustain", type=float, default=60, help="the sustained run for memory (0: skip)")
    parser.add_argument("--backends", default="sqlite,postgres,postgres2")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    rows = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            rows += bench("SQLite", 1, None, args.seconds, args.sustain)
            continue
        schema, url = fresh_schema(args.database_url)
        try:
            rows += bench("Postgres", 2 if backend == "postgres2" else 1, url, args.seconds, args.sustain)
        finally:
            drop_schema(args.database_url, schema)

    print(f"\n{platform.node()}, {os.cpu_count()} cores, {args.seconds:.0f} s per row, closed loop, load generator on the same machine\n")
    print(f"load average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (other work on the machine slows every row)\n")
    print(
        "| backend | replicas | path | connections | 2xx/s | p50 (ms) | p99 (ms) | non-2xx | server CPU ms/request | RSS before → after (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        memory = f"{r['rss_before']:.0f} → {r['rss_after']:.0f}" if "rss_before" in r else ""
        print(
            f"| {r['backend']} | {r['replicas']} | {r['path']} | {r['connections']} | {r['ok_per_s']:.1f} | {r['p50']:.1f} | "
            f"{r['p99']:.0f} | {r['errors']} of {r['requests']} | {r['cpu_ms']:.1f} | {memory} |"
        )


if __name__ == "__main__":
    main()
