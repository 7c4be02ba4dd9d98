"""The retrieve node: asks about the intent and the environment's rules, returns evidence as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from fakes import FakeRetriever, runtime_for

from agentops.errors import AgentOpsError
from agentops.policy import load_documents
from agentops.schemas import Evidence
from agentops.settings import PROJECT_ROOT
from nodes.retrieve import MAX_EVIDENCE, retrieve
from tools.retrieval.policy_store import PolicyStore

INTENT = "deploy fraud-detector v3 to prod on two ml.g5.xlarge, canary 10%"


def evidence(section: str, score: float, policy: str = "deployment-policy") -> Evidence:
    return Evidence(policy=policy, section=section, text=f"text of {section}", score=score)


def test_queries_carry_the_intent_and_the_environment(make_deps):
    retriever = FakeRetriever()
    retrieve({"intent": INTENT, "env": "prod"}, runtime_for(make_deps(retriever=retriever)))

    assert any(INTENT in q and "prod" in q for q in retriever.queries)
    assert all("prod" in q for q in retriever.queries)  # every question is asked for this environment


def test_evidence_is_returned_as_json_dicts(make_deps):
    retriever = FakeRetriever([evidence("Human approval", 0.9), evidence("Progressive rollout", 0.7)])
    update = retrieve({"intent": INTENT, "env": "prod"}, runtime_for(make_deps(retriever=retriever)))

    assert set(update) == {"evidence"}
    assert json.loads(json.dumps(update["evidence"])) == update["evidence"]
    assert update["evidence"][0] == {
        "policy": "deployment-policy",
        "section": "Human approval",
        "text": "text of Human approval",
        "score": 0.9,
    }


class PerQueryRetriever:
    """Answers each successive query with its own list, to see how the node merges them."""

    def __init__(self, *answers: list[Evidence]):
        self.answers = list(answers)
        self.queries: list[str] = []

    def search(self, query: str, k: int = 3) -> list[Evidence]:
        self.queries.append(query)
        return self.answers[len(self.queries) - 1][:k] if len(self.queries) <= len(self.answers) else []


def test_results_merge_by_best_score_without_duplicates(make_deps):
    retriever = PerQueryRetriever(
        [evidence("Instance types per environment", 0.6), evidence("Human approval", 0.5), evidence("Autoscaling", 0.4)],
        [evidence("Human approval", 0.95), evidence("Cost limits", 0.8, "cost-and-pricing"), evidence("Autoscaling", 0.1)],
    )
    update = retrieve({"intent": INTENT, "env": "prod"}, runtime_for(make_deps(retriever=retriever)))

    cited = [(e["section"], e["score"]) for e in update["evidence"]]
    assert cited == [
        ("Human approval", 0.95),
        ("Cost limits", 0.8),
        ("Instance types per environment", 0.6),
        ("Autoscaling", 0.4),
    ]
    assert len(retriever.queries) >= 2


def test_evidence_is_capped(make_deps):
    many = [evidence(f"Section {i}", 1.0 - i / 100) for i in range(10)]
    retriever = PerQueryRetriever(many[:5], many[5:])  # k=3 each: six distinct sections in all
    update = retrieve({"intent": INTENT, "env": "staging"}, runtime_for(make_deps(retriever=retriever)))
    assert len(update["evidence"]) == MAX_EVIDENCE


def test_with_the_real_policy_store_prod_rules_are_cited(make_deps, tmp_path: Path):
    store = PolicyStore(tmp_path / "chroma", load_documents(PROJECT_ROOT / "knowledge_base"))
    update = retrieve({"intent": INTENT, "env": "prod"}, runtime_for(make_deps(retriever=store)))

    cited = {(e["policy"], e["section"]) for e in update["evidence"]}
    assert 1 <= len(update["evidence"]) <= MAX_EVIDENCE
    assert ("deployment-policy", "Human approval") in cited
    assert ("deployment-policy", "Instance types per environment") in cited
    assert len(cited) == len(update["evidence"])  # no section twice
    assert all(isinstance(e["score"], float) and e["text"] for e in update["evidence"])


class FailingRetriever:
    def search(self, query, k=3):
        raise AgentOpsError("embeddings endpoint failed after 3 attempts: timed out")


def test_a_retriever_that_cannot_answer_fails_the_plan_on_the_record(make_deps):
    update = retrieve({"plan_id": "p1", "intent": "deploy x", "env": "dev"}, runtime_for(make_deps(retriever=FailingRetriever())))
    assert update["status"] == "failed" and "timed out" in update["error"]
    assert update["events"][0]["step"] == "retrieve"
