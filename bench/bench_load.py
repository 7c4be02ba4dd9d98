"""Load over HTTP: N concurrent clients submitting prod intents and approving them, against real
`agentops serve` processes on 127.0.0.1 — SQLite (one process), Postgres with one replica, and two.

    .venv/bin/python bench/bench_load.py --clients 10 --requests 100

Each plan is two requests: alice's POST /plans (plan → guardrail → pending approval) and bob's
POST /plans/{id}/decisions (approval → dry-run deploy → audit), the second sent to the next replica, so
with two replicas every approval crosses processes. Reports throughput (requests / wall time), p50/p99
latency per request, and peak memory (the sum of the replicas' VmHWM). Postgres runs in a fresh schema,
dropped afterwards. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from api.auth import create_dev_keys

AGENTOPS = str(Path(sys.executable).parent / "agentops")
INTENT = "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_replica(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [AGENTOPS, "serve", "--port", str(port)],
        env=env | {"AGENTOPS_HOME": str(home)},
        stdout=(home / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"a replica exited at start-up; see {home / 'serve.log'}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit(f"a replica did not become ready in 120 s; see {home / 'serve.log'}")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_load(urls: list[str], keys: dict[str, str], clients: int, requests: int) -> dict[str, float]:
    latencies: list[float] = []
    failures: list[str] = []

    def one_plan(i: int) -> None:
        submit_at, approve_at = urls[i % len(urls)], urls[(i + 1) % len(urls)]
        with httpx.Client(timeout=120) as http:
            started = time.perf_counter()
            plan = http.post(
                f"{submit_at}/plans",
                json={"intent": INTENT, "env": "prod"},
                headers={"Authorization": f"Bearer {keys['alice@example.com']}"},
            )
            latencies.append(time.perf_counter() - started)
            if plan.status_code != 201:
                failures.append(f"submit: {plan.status_code}")
                return
            started = time.perf_counter()
            decided = http.post(
                f"{approve_at}/plans/{plan.json()['plan_id']}/decisions",
                json={"approved": True, "reason": "bench"},
                headers={"Authorization": f"Bearer {keys['bob@example.com']}"},
            )
            latencies.append(time.perf_counter() - started)
            if decided.status_code not in (200, 202):
                failures.append(f"decide: {decided.status_code}")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one_plan, range(requests // 2)))
    wall = time.perf_counter() - started
    if failures:
        sys.exit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return {
        "rps": len(latencies) / wall,
        "p50": percentile(latencies, 0.5) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "mean": statistics.fmean(latencies) * 1000,
    }


def bench(name: str, replicas: int, database_url: str | None, clients: int, requests: int) -> dict[str, float | str]:
    with tempfile.TemporaryDirectory() as tmp:
        keys_file = Path(tmp) / "api-keys.json"
        keys = create_dev_keys(keys_file)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTOPS_") and k not in ("EXECUTE",)}
        env |= {"AGENTOPS_API_KEYS_FILE": str(keys_file)}
        if database_url:
            env["AGENTOPS_DATABASE_URL"] = database_url
        started = [start_replica(Path(tmp) / f"replica-{i}", env) for i in range(replicas)]
        try:
            result = run_load([url for _, url in started], keys, clients, requests)
            result["memory"] = sum(peak_rss_mb(p.pid) for p, _ in started)
        finally:
            for process, _ in started:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=60)
    return {"backend": name, "replicas": replicas} | result


def fresh_schema(base_url: str) -> tuple[str, str]:
    import psycopg

    schema = f"agentops_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema, f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{schema}"


def drop_schema(base_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=100, help="per backend; half submissions, half approvals")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    rows = [bench("SQLite", 1, None, args.clients, args.requests)]
    for replicas in (1, 2):
        schema, url = fresh_schema(args.database_url)
        try:
            rows.append(bench("Postgres", replicas, url, args.clients, args.requests))
        finally:
            drop_schema(args.database_url, schema)

    print(f"\n{args.clients} clients, {args.requests} requests per backend (half POST /plans, half POST /plans/{{id}}/decisions)\n")
    print("| backend | replicas | throughput (req/s) | p50 (ms) | p99 (ms) | peak memory (MB, all replicas) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['backend']} | {row['replicas']} | {row['rps']:.1f} | {row['p50']:.0f} | {row['p99']:.0f} | {row['memory']:.0f} |")


if __name__ == "__main__":
    main()
