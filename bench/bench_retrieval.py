"""Recall@k of policy retrieval over a labeled question set, with the real PolicyStore in a temp dir.

    .venv/bin/python bench/bench_retrieval.py [--k 3] [--labeled bench/kb_labeled.jsonl]

A question counts as found when its expected (policy, section) is among the top k results. The set is
hand-written, so tune the embedding or reranker in general, never for one line of it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentops.policy import load_documents
from agentops.settings import PROJECT_ROOT
from tools.retrieval.policy_store import PolicyStore

LABELED = Path(__file__).resolve().parent / "kb_labeled.jsonl"


def load_labeled(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rank_of_expected(store: PolicyStore, case: dict, k: int) -> tuple[int | None, str]:
    """1-based rank of the expected section within the top k (None if absent), and the top hit."""
    results = store.search(case["q"], k=k)
    ranks = [i for i, e in enumerate(results, 1) if (e.policy, e.section) == (case["policy"], case["section"])]
    top = f"{results[0].policy} / {results[0].section}" if results else "-"
    return (ranks[0] if ranks else None), top


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--labeled", type=Path, default=LABELED)
    args = parser.parse_args()

    cases = load_labeled(args.labeled)
    table = Table(title=f"policy retrieval, recall@{args.k}")
    for column in ("question", "expected section", "rank", "top hit"):
        table.add_column(column)
    found = 0
    with tempfile.TemporaryDirectory() as tmp:
        store = PolicyStore(Path(tmp) / "chroma", load_documents(PROJECT_ROOT / "knowledge_base"))
        for case in cases:
            rank, top = rank_of_expected(store, case, args.k)
            found += rank is not None
            mark = str(rank) if rank else "[red]miss[/red]"
            table.add_row(case["q"], f"{case['policy']} / {case['section']}", mark, top)
    console = Console()
    console.print(table)
    console.print(f"recall@{args.k}: {found}/{len(cases)} = {found / len(cases):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
