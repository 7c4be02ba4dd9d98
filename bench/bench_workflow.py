"""Latency of a dry-run intent in-process: p50/p99 per node and end to end.

    .venv/bin/python bench/bench_workflow.py --runs 50

Per node: the node functions called in workflow order on the embedded defaults (real Chroma, the
rules planner, SQLite audit log and plan index, dry-run deployer). End to end: `Orchestrator.run` of
a staging intent that needs no approval (intake → … → deploy → watch → audit) with the SQLite checkpointer.
Everything runs in a temporary AGENTOPS_HOME; the first run (which builds the Chroma index) is a
warm-up and not counted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from langgraph.runtime import Runtime
from rich.console import Console
from rich.table import Table

from agentops.approval import Caller
from agentops.settings import Settings
from app.service import Orchestrator
from graph.context import run_config
from nodes.audit import audit
from nodes.deploy import deploy
from nodes.guardrail import guardrail
from nodes.intake import intake
from nodes.plan import plan
from nodes.resolve import resolve
from nodes.retrieve import retrieve
from nodes.watch import watch

INTENT = "roll out sentiment-bert v2 to staging on 2 ml.m5.xlarge instances"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_nodes(orchestrator: Orchestrator, run: int) -> dict[str, float]:
    runtime = Runtime(context=orchestrator.deps)
    state = {"intent": INTENT, "env": "staging", "events": []}
    config = run_config(f"bench-nodes-{run}", Caller("bench", frozenset({"requester"})))  # intake names the plan and its requester
    timings = {}
    steps = (
        ("intake", intake),
        ("retrieve", retrieve),
        ("plan", plan),
        ("resolve", resolve),
        ("guardrail", guardrail),
        ("deploy", deploy),
        ("watch", watch),
        ("audit", audit),
    )
    for name, node in steps:
        start = time.perf_counter()
        update = node(state, config, runtime) if node is intake else node(state, runtime)
        timings[name] = time.perf_counter() - start
        state = {**state, **update, "events": state["events"] + update.get("events", [])}
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, Orchestrator.open(Settings(home=Path(home), _env_file=None)) as orchestrator:
        orchestrator.run(INTENT, "staging", "bench")  # warm-up: builds the Chroma index
        samples: dict[str, list[float]] = {}
        for run in range(args.runs):
            for name, seconds in time_nodes(orchestrator, run).items():
                samples.setdefault(name, []).append(seconds)
        for _ in range(args.runs):
            start = time.perf_counter()
            assert orchestrator.run(INTENT, "staging", "bench")["status"] == "deployed"
            samples.setdefault("end to end (graph + checkpoints)", []).append(time.perf_counter() - start)

    table = Table("step", "p50 ms", "p99 ms", "mean ms", title=f"dry-run intent, {args.runs} runs", title_justify="left")
    for name, values in samples.items():
        table.add_row(
            name,
            f"{percentile(values, 0.5) * 1000:.1f}",
            f"{percentile(values, 0.99) * 1000:.1f}",
            f"{statistics.fmean(values) * 1000:.1f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
