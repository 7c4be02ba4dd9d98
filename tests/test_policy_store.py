"""The policy store with a real, persistent Chroma in tmp_path, and the lexical reranker behind it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
from fakes import eval_cases

from agentops.errors import AgentOpsError
from agentops.policy import PolicyDocument, load_documents
from agentops.settings import PROJECT_ROOT, Settings
from tools.retrieval.embeddings import HashingEmbeddingFunction
from tools.retrieval.policy_store import FINGERPRINT_KEY, PolicyStore
from tools.retrieval.rerank import LexicalReranker

KNOWLEDGE_BASE = PROJECT_ROOT / "knowledge_base"


@pytest.fixture(scope="module")
def documents() -> list[PolicyDocument]:
    return load_documents(KNOWLEDGE_BASE)


@pytest.fixture
def store(tmp_path: Path, documents: list[PolicyDocument]) -> PolicyStore:
    return PolicyStore(tmp_path / "chroma", documents)


def section_count(documents: list[PolicyDocument]) -> int:
    return sum(len(doc.sections) for doc in documents)


def collection_of(store: PolicyStore):
    return store.collection()


# --- indexing and search -------------------------------------------------------------------------------


def test_search_cites_the_document_and_section_with_the_section_text(store: PolicyStore, documents):
    results = store.search("Which instance types are allowed in staging?", k=3)

    assert len(results) == 3
    top = results[0]
    assert (top.policy, top.section) == ("deployment-policy", "Instance types per environment")
    section = next(s for d in documents if d.id == top.policy for s in d.sections if s.heading == top.section)
    assert top.text == section.text  # the section as an approver reads it, not the indexed variant
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    assert all(0.0 <= r.score <= 1.0 and r.score == round(r.score, 4) for r in results)


def test_one_record_per_section_with_citable_ids_and_metadata(store: PolicyStore, documents):
    assert store.ensure_indexed() is True
    records = collection_of(store).get(include=["metadatas"])

    assert len(records["ids"]) == section_count(documents)
    assert "deployment-policy#human-approval" in records["ids"]
    metadata = records["metadatas"][records["ids"].index("deployment-policy#human-approval")]
    assert metadata == {"policy": "deployment-policy", "section": "Human approval", "title": "Deployment policy"}


def test_ensure_indexed_builds_once_then_only_checks(store: PolicyStore):
    assert store.ensure_indexed() is True
    collection_id = collection_of(store).id

    assert store.ensure_indexed() is False
    assert collection_of(store).id == collection_id
    assert collection_of(store).metadata[FINGERPRINT_KEY] == store.fingerprint


def test_a_new_process_reopens_the_collection_without_reindexing(store: PolicyStore, tmp_path: Path):
    store.ensure_indexed()
    persist_dir = tmp_path / "chroma"
    before = collection_of(store)
    # Plain Chroma first, passing no embedding function: only the registered one can embed the query
    # (Chroma's default would try to download a model). Then the store must find nothing to rebuild.
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        import chromadb
        import tools.retrieval.embeddings  # registers the embedding function with Chroma
        from agentops.policy import load_documents
        from tools.retrieval.policy_store import FINGERPRINT_KEY, PolicyStore

        client = chromadb.PersistentClient(path={str(persist_dir)!r}, settings=chromadb.Settings(anonymized_telemetry=False))
        collection = client.get_collection("policies")
        raw = collection.query(query_texts=["hourly price of ml.m5.large"], n_results=1)
        store = PolicyStore({str(persist_dir)!r}, load_documents(Path({str(KNOWLEDGE_BASE)!r})))
        rebuilt = store.ensure_indexed()
        top = store.search("What is the hourly price of ml.m5.large?", k=1)[0]
        after = client.get_collection("policies")
        print(json.dumps({{
            "raw_top": raw["ids"][0][0], "rebuilt": rebuilt, "id": str(after.id), "count": after.count(),
            "fingerprint": after.metadata[FINGERPRINT_KEY], "top": [top.policy, top.section],
        }}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["raw_top"] == "cost-and-pricing#price-table"
    assert seen["rebuilt"] is False
    assert seen["id"] == str(before.id)
    assert seen["count"] == before.count()
    assert seen["fingerprint"] == store.fingerprint
    assert seen["top"] == ["cost-and-pricing", "Price table"]


def test_editing_a_document_reindexes(tmp_path: Path):
    knowledge_base = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE_BASE, knowledge_base)
    persist_dir = tmp_path / "chroma"
    old = PolicyStore(persist_dir, load_documents(knowledge_base))
    old.ensure_indexed()
    old_id = collection_of(old).id

    pricing = knowledge_base / "cost-and-pricing.md"
    pricing.write_text(pricing.read_text().replace("is 0.115 USD", "is 0.125 USD"))
    edited = PolicyStore(persist_dir, load_documents(knowledge_base))

    assert edited.fingerprint != old.fingerprint
    assert edited.ensure_indexed() is True
    assert collection_of(edited).id != old_id
    top = edited.search("What is the hourly price of ml.m5.large?", k=1)[0]
    assert "is 0.125 USD" in top.text
    assert PolicyStore(persist_dir, load_documents(knowledge_base)).ensure_indexed() is False


def test_switching_the_embedding_function_reindexes_instead_of_mixing(store: PolicyStore, tmp_path: Path, documents):
    store.ensure_indexed()
    smaller = PolicyStore(tmp_path / "chroma", documents, embedding_function=HashingEmbeddingFunction(dimension=256))

    assert smaller.ensure_indexed() is True
    assert smaller.search("What is the hourly price of ml.m5.large?", k=1)[0].section == "Price table"
    stored = collection_of(smaller).get(limit=1, include=["embeddings"])["embeddings"][0]
    assert len(stored) == 256


def test_from_settings_uses_the_configured_directory_and_collection(tmp_path: Path):
    settings = Settings(home=tmp_path / "home", collection_name="kb-test", _env_file=None)
    store = PolicyStore.from_settings(settings)
    store.ensure_indexed()

    assert store.collection_name == "kb-test"
    assert (settings.chroma_dir / "chroma.sqlite3").exists()


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_a_blank_query_is_refused_in_one_line(store: PolicyStore, query: str):
    with pytest.raises(AgentOpsError) as raised:
        store.search(query)
    assert "\n" not in str(raised.value)


# --- the reranker's order is the order returned ----------------------------------------------------------


class OrderReranker:
    """Keeps (or reverses) the first-stage order and records what it was given."""

    def __init__(self, reverse: bool):
        self.reverse = reverse
        self.calls: list[tuple[str, list[str], list[float] | None]] = []

    def rerank(self, query: str, passages: Sequence[str], prior_scores: Sequence[float] | None = None):
        self.calls.append((query, list(passages), None if prior_scores is None else list(prior_scores)))
        order = list(range(len(passages)))[:: -1 if self.reverse else 1]
        return [(index, 1.0 - rank / 10) for rank, index in enumerate(order)]


def test_search_returns_the_rerankers_order(tmp_path: Path, documents):
    question = "Does every production deployment need approval?"
    keep, reverse = OrderReranker(reverse=False), OrderReranker(reverse=True)
    vector_order = PolicyStore(tmp_path / "a", documents, reranker=keep, candidates=5).search(question, k=5)
    reversed_order = PolicyStore(tmp_path / "b", documents, reranker=reverse, candidates=5).search(question, k=5)

    key = lambda e: (e.policy, e.section)  # noqa: E731
    assert [key(e) for e in reversed_order] == [key(e) for e in reversed(vector_order)]
    assert [e.score for e in reversed_order] == [1.0, 0.9, 0.8, 0.7, 0.6]
    query, passages, priors = reverse.calls[0]
    assert query == question and len(passages) == 5
    assert priors == sorted(priors, reverse=True)  # first-stage similarities, best first


def test_searches_after_the_first_ask_chroma_only_for_the_query(store: PolicyStore, monkeypatch):
    store.search("Who approves production deployments?")
    fetched, queried = [], []
    real_get = store._client.get_collection
    monkeypatch.setattr(store._client, "get_collection", lambda *a, **kw: fetched.append(a) or real_get(*a, **kw))
    real_query = store._collection.query
    monkeypatch.setattr(store._collection, "query", lambda *a, **kw: queried.append(kw) or real_query(*a, **kw))

    first = store.search("What is the hourly price of ml.m5.large?")
    again = store.search("What is the hourly price of ml.m5.large?")
    assert (len(fetched), len(queried)) == (0, 1)  # no collection look-ups; the repeated question is remembered
    assert again == first and again[0] is not first[0]  # equal answers, not shared objects a caller could change


def test_a_collection_rebuilt_by_another_process_is_found_again(store: PolicyStore, tmp_path: Path):
    before = store.search("Who approves production deployments?")
    import chromadb

    other = chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=chromadb.Settings(anonymized_telemetry=False))
    other.delete_collection("policies")
    after = store.search("Does every prod deployment need a human approval?")
    assert after and after[0].policy == before[0].policy == "deployment-policy"
    assert collection_of(store).metadata[FINGERPRINT_KEY] == store.fingerprint


# --- the lexical reranker ---------------------------------------------------------------------------------


def test_lexical_reranker_prefers_the_rare_exact_term():
    passages = ["Instance counts per environment for every deployment.", "The hourly price of ml.m5.large is 0.115 USD."]
    ranking = LexicalReranker().rerank("price 0.115", passages)
    assert [index for index, _ in ranking] == [1, 0]
    assert ranking[0][1] == 1.0


def test_lexical_reranker_blends_in_the_prior_scores():
    passages = ["canary rollout for prod", "canary rollout for staging", "audit log"]
    only_vector = LexicalReranker(lexical_weight=0.0).rerank("canary", passages, prior_scores=[0.1, 0.2, 0.4])
    blended = LexicalReranker(lexical_weight=0.5).rerank("canary", passages, prior_scores=[0.1, 0.2, 0.4])

    assert [index for index, _ in only_vector] == [2, 1, 0]
    assert blended[0][0] == 1  # lexical match and the better prior of the two matches
    assert all(0.0 <= score <= 1.0 for _, score in blended)
    assert sorted(index for index, _ in blended) == [0, 1, 2]


def test_lexical_reranker_checks_its_inputs():
    assert LexicalReranker().rerank("anything", []) == []
    with pytest.raises(ValueError):
        LexicalReranker().rerank("q", ["a", "b"], prior_scores=[0.5])


# --- the shared evaluation questions ----------------------------------------------------------------------


def kb_questions() -> list:
    cases = eval_cases("kb_questions.jsonl")
    return [pytest.param(json.loads(line), id=json.loads(line)["q"][:50]) if isinstance(line, str) else line for line in cases]


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory, documents) -> PolicyStore:
    return PolicyStore(tmp_path_factory.mktemp("kb") / "chroma", documents)


@pytest.mark.parametrize("case", kb_questions())
def test_evaluation_question_is_answered_in_the_top_three(shared_store: PolicyStore, case: dict):
    texts = [e.text for e in shared_store.search(case["q"], k=3)]
    assert any(expected in text for text in texts for expected in case["any_of"]), texts


def test_processes_starting_at_once_on_one_home_set_the_collection_up_once(tmp_path: Path, documents):
    """Four processes open a fresh home at once (Chroma creates its tables then), and are released together
    (they block on stdin until all have opened it): each searches at once, so each finds no collection and
    wants to build it. All answer; one collection."""
    persist_dir = tmp_path / "chroma"
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from agentops.policy import load_documents
        from tools.retrieval.policy_store import PolicyStore

        store = PolicyStore({str(persist_dir)!r}, load_documents(Path({str(KNOWLEDGE_BASE)!r})))
        print("ready", flush=True)
        sys.stdin.readline()
        top = store.search("What is the hourly price of ml.m5.large?", k=1)[0]
        print(json.dumps([top.policy, top.section]), flush=True)
        """
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
        )
        for _ in range(4)
    ]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready", process.stderr.read()
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        answers = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for (out, err), process in zip(answers, processes, strict=True):
        assert process.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1]) == ["cost-and-pricing", "Price table"]
    store = PolicyStore(persist_dir, documents)
    assert store.ensure_indexed() is False  # built once, with the documents' fingerprint
    assert store.collection().count() == section_count(documents)
