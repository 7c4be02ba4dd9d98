"""The retrieve node: the policy sections that apply to this intent in this environment.

Two questions, because an intent rarely names the rules that bind it: "deploy fraud-detector to prod on
one g5.xlarge" says nothing of approval or high availability. One query follows the intent's own words;
the other asks for the environment's rules. Their results merge by best score, one entry per section.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agentops.errors import AgentOpsError
from agentops.ports import Dependencies
from agentops.schemas import Evidence
from graph.context import dependencies_of
from graph.state import PlanState

MAX_EVIDENCE = 5
PER_QUERY = 3


def retrieval_queries(intent: str, env: str) -> list[str]:
    """The intent in its own words, then the questions every plan in `env` must answer."""
    return [
        f"{intent} (environment: {env})",
        f"{env} deployments: which instance types, how many instances, what hourly cost limit, when is approval needed",
    ]


def merge_by_best_score(results: list[list[Evidence]], limit: int) -> list[Evidence]:
    """One entry per (policy, section), keeping its best score; best first, at most `limit`."""
    best: dict[tuple[str, str], Evidence] = {}
    for evidence in (e for found in results for e in found):
        key = (evidence.policy, evidence.section)
        if key not in best or evidence.score > best[key].score:
            best[key] = evidence
    return sorted(best.values(), key=lambda e: e.score, reverse=True)[:limit]


def retrieve(state: PlanState, runtime: Runtime[Dependencies]) -> dict[str, Any]:
    deps = dependencies_of(runtime)
    queries = retrieval_queries(state["intent"], state["env"])
    try:
        found = merge_by_best_score([deps.retriever.search(q, k=PER_QUERY) for q in queries], MAX_EVIDENCE)
    except AgentOpsError as exc:
        # A retriever that cannot answer (its endpoint failed and configuration says fail, not fall back)
        # ends the plan `failed`, on the record — never planned without the policy it should have read.
        error = f"policy retrieval failed: {exc}"
        return {"status": "failed", "error": error, "events": [{"step": "retrieve", "actor": "retriever", "payload": {"error": error}}]}
    return {"evidence": [e.model_dump(mode="json") for e in found]}
