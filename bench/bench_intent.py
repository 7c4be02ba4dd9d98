"""Time to read one intent (tools/planning/reader.py): the goal is <= 0.5 ms, the reader being pure.

    .venv/bin/python bench/bench_intent.py [--runs 2000]

Reads a fixed mix of intents as people write them (plain, with typos, compound), after one warm-up
read that loads SageMaker's instance types from botocore (once per process, not counted). Prints the
median and 95th percentile per read.
"""

from __future__ import annotations

import argparse
import statistics
import time

from tools.planning.instance_types import sagemaker_instance_types
from tools.planning.reader import read_intent

INTENTS = [
    "deploy fraud-detector v3 to prod on two g5.xlarge, canary 10%",
    "push sku-matcher v1.2 to staging on 2x ml.m5.large, autoscale 2-4, budget $3/h",
    "spin up ranker in dev on ml.m5.large ×3 without monitoring, no data capture",
    "roll out churn-predictor version 4 to prod with at most 3 instances, linear 20%, 20% data capture",
    "deploy llama-3.1 8B for chatbot-x on 2 ml.g5.12xlarge",
    "deploy ranker to prod on 2 g5.2xlrage canray 10%",
    "deploy v2 and delete v1",
    "tear down churn-dev",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    sagemaker_instance_types()
    read_intent(INTENTS[0])
    times = []
    for i in range(args.runs):
        text = INTENTS[i % len(INTENTS)]
        start = time.perf_counter()
        read_intent(text)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    median, p95, mean = statistics.median(times), times[int(len(times) * 0.95)], statistics.fmean(times)
    print(f"intent read: median {median:.3f} ms, mean {mean:.3f} ms, p95 {p95:.3f} ms over {args.runs} reads (goal <= 0.5 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
