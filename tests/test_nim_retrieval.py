"""NVIDIA embeddings and reranker behind the policy store: the real clients against a fake NIM, with the
exact payloads they send, the reranker's order carried into the evidence, re-indexing on a model
switch, and the fallback / fail outcomes when an endpoint breaks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fake_nim import EMBEDDINGS, RANKING, FakeNim, Reply, error, rankings

from agentops.errors import AgentOpsError
from agentops.policy import load_documents
from agentops.settings import PROJECT_ROOT, Settings
from app.service import Orchestrator
from graph.wiring import build_retriever
from tools.audit.local import SqliteAuditLog
from tools.nvidia.client import EndpointFailure
from tools.nvidia.embeddings import NimEmbeddingFunction
from tools.retrieval.policy_store import PolicyStore

QUESTION = "Which instance types are allowed in staging?"


@pytest.fixture
def fake():
    with FakeNim() as server:
        yield server


@pytest.fixture
def settings_for(tmp_path: Path, fake: FakeNim):
    def build(**overrides: Any) -> Settings:
        values = {
            "home": tmp_path / "home",
            "embeddings": "nim",
            "reranker": "nim",
            "embeddings_base_url": fake.url,
            "reranker_base_url": fake.url,
            "nim_timeout_seconds": 10,
            "nim_retries": 1,
            "nim_backoff_seconds": 0,
        } | overrides
        return Settings(_env_file=None, **values)

    return build


def section_count() -> int:
    return sum(len(d.sections) for d in load_documents(PROJECT_ROOT / "knowledge_base"))


def test_passages_are_indexed_as_passage_and_questions_asked_as_query(settings_for, fake):
    build_retriever(settings_for(reranker="local")).search(QUESTION, k=3)

    index, query = fake.bodies(EMBEDDINGS)
    assert index["input_type"] == "passage" and len(index["input"]) == section_count()
    assert query == {
        "input": [QUESTION],
        "model": "nvidia/nv-embedqa-e5-v5",
        "encoding_format": "float",
        "input_type": "query",
        "truncate": "END",
    }


def test_the_ranking_request_carries_the_query_and_the_first_stage_candidates(settings_for, fake):
    build_retriever(settings_for()).search(QUESTION, k=3)

    (body,) = fake.bodies(RANKING)
    assert body["model"] == "nvidia/nv-rerankqa-mistral-4b-v3" and body["query"] == {"text": QUESTION}
    assert len(body["passages"]) == 10 and all(set(p) == {"text"} for p in body["passages"])


def test_the_rerankers_order_is_the_evidence_order(settings_for, fake):
    fake.script(RANKING, rankings(9, 4, 7, 0, 1, 2, 3, 5, 6, 8))
    results = build_retriever(settings_for()).search(QUESTION, k=3)

    passages = [p["text"] for p in fake.bodies(RANKING)[0]["passages"]]
    assert [r.text in passages[i] for r, i in zip(results, (9, 4, 7), strict=False)] == [True, True, True]
    assert results[0].score > results[1].score > results[2].score and 0 < results[2].score < 1


def test_switching_the_embedding_model_re_indexes(settings_for, fake):
    first = build_retriever(settings_for(reranker="local"))
    first.search(QUESTION)
    again = build_retriever(settings_for(reranker="local"))
    assert again.primary.ensure_indexed() is False  # same model: the stored vectors are reused

    switched = build_retriever(settings_for(reranker="local", embeddings_model="nvidia/llama-3.2-nv-embedqa-1b-v2"))
    assert switched.primary.ensure_indexed() is True
    passage_models = [b["model"] for b in fake.bodies(EMBEDDINGS) if b["input_type"] == "passage"]
    assert passage_models == ["nvidia/nv-embedqa-e5-v5", "nvidia/llama-3.2-nv-embedqa-1b-v2"]
    stored = switched.primary.collection().configuration_json["embedding_function"]
    assert stored["name"] == "agentops_nvidia" and stored["config"]["model"] == "nvidia/llama-3.2-nv-embedqa-1b-v2"
    assert "api_key" not in json.dumps(stored)


def test_a_new_process_reopens_the_collection_from_its_stored_config(settings_for, fake):
    settings = settings_for(reranker="local")
    build_retriever(settings).search(QUESTION)
    script = textwrap.dedent(f"""
        import chromadb, tools.nvidia.embeddings
        client = chromadb.PersistentClient(path={str(settings.chroma_dir)!r}, settings=chromadb.Settings(anonymized_telemetry=False))
        found = client.get_collection("policies-nim").query(query_texts=["canary rollout in prod"], n_results=2)
        print(len(found["ids"][0]))
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "AGENTOPS_HOME": str(settings.home)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
    assert fake.bodies(EMBEDDINGS)[-1]["input"] == ["canary rollout in prod"]


def test_the_collection_never_stores_the_api_key(tmp_path, fake):
    function = NimEmbeddingFunction.from_settings(Settings(_env_file=None, embeddings_base_url=fake.url, nvidia_api_key="nvapi-secret"))
    assert "nvapi-secret" not in json.dumps(function.get_config())


# --- failures --------------------------------------------------------------------------------------


def test_a_failing_embeddings_endpoint_falls_back_to_the_offline_store(settings_for, fake):
    fake.script(EMBEDDINGS, error(500), error(500))
    results = build_retriever(settings_for()).search(QUESTION, k=3)
    assert (results[0].policy, results[0].section) == ("deployment-policy", "Instance types per environment")
    assert len(fake.bodies(EMBEDDINGS)) == 2 and fake.bodies(RANKING) == []


def test_a_retrieval_fallback_is_written_on_the_plan_and_its_audit_record(settings_for, fake):
    fake.script(EMBEDDINGS, *[error(500)] * 4)  # both of the retrieve node's questions fail
    settings = settings_for()
    with Orchestrator.open(settings) as orchestrator:
        view = orchestrator.run("deploy churn-predictor to staging on 2 ml.m5.large", "staging", "carol")

    reasons = view["planner"]["evidence_fallback"]
    assert len(reasons) == 1 and "NVIDIA embeddings endpoint" in reasons[0] and "HTTP 500" in reasons[0]
    assert view["evidence"] and all(e["fallback"] == reasons[0] for e in view["evidence"])
    assert f"policy evidence came from the offline store: {reasons[0]}" in view["verdict"]["warnings"]
    (planned,) = [e for e in SqliteAuditLog(settings.app_db).events(view["plan_id"]) if e.step == "plan.1"]
    assert planned.payload["evidence_fallback"] == reasons


def test_a_failing_reranker_falls_back_to_the_offline_store(settings_for, fake):
    fake.script(RANKING, Reply(json={"rankings": [{"index": 42, "logit": 1.0}]}), Reply(json={"oops": True}))
    results = build_retriever(settings_for(embeddings="local")).search(QUESTION, k=3)
    assert len(fake.bodies(RANKING)) == 2
    assert (results[0].policy, results[0].section) == ("deployment-policy", "Instance types per environment")


def test_in_fail_mode_a_failing_endpoint_is_one_clear_error(settings_for, fake):
    fake.script(RANKING, error(503), error(503))
    with pytest.raises(EndpointFailure, match=r"^NVIDIA reranker endpoint .* failed after 2 attempts: HTTP 503") as caught:
        build_retriever(settings_for(nim_on_failure="fail")).search(QUESTION)
    assert isinstance(caught.value, AgentOpsError) and "\n" not in str(caught.value)


def test_offline_settings_build_the_plain_store(tmp_path):
    retriever = build_retriever(Settings(_env_file=None, home=tmp_path / "home"))
    assert isinstance(retriever, PolicyStore) and retriever.collection_name == "policies"
